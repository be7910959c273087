from django.contrib import admin

from console.holds.models import LegalHold, Offboarding

admin.site.register(LegalHold)
admin.site.register(Offboarding)
