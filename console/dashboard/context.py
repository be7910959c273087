"""Template context shared by every page."""

from django.core.cache import cache

from console.fleet.models import DeviceGroup


def demo(request) -> dict:
    """``demo_data``: the database holds seed_demo's data (banner on every page)."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    flag = cache.get("cairn:demo-data")
    if flag is None:
        flag = DeviceGroup.objects.filter(is_demo=True).exists()
        cache.set("cairn:demo-data", flag, 60)
    return {"demo_data": flag}
