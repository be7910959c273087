"""The policy form's limits fields map onto the spec and back, errors included."""

from console.dashboard.forms import PolicyForm
from console.policies import spec as specs


def _form(**overrides):
    initial = PolicyForm.initial_from("Laptops", "", specs.default_spec())
    data = {k: v for k, v in initial.items() if v is not None and v is not False}
    data.update(overrides)
    form = PolicyForm(data)
    assert form.is_valid(), form.errors
    return form


def test_cpu_ceiling_round_trips_through_the_form():
    assert PolicyForm.initial_from("x", "", specs.default_spec())["cpu_percent"] == 0
    spec, errors = specs.validate_spec(_form(cpu_percent="30").to_spec())
    assert errors == {} and spec["limits"]["cpu_percent"] == 30
    spec, errors = specs.validate_spec(_form(cpu_percent="").to_spec())
    assert errors == {} and spec["limits"]["cpu_percent"] == 0  # blank = no ceiling


def test_cpu_ceiling_error_is_shown_on_its_field():
    form = _form(cpu_percent="150")
    _, errors = specs.validate_spec(form.to_spec())
    form.add_spec_errors(errors)
    assert form.errors == {"cpu_percent": ["Must be between 0 and 100."]}
