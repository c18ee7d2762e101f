"""mizan-hub's Django app (distribution ``django-mizan-hub``).

For now it holds only :mod:`mizan_hub.protocol`, the pure-Python codecs of
``protocol/SPEC.md``. The app modules come later; this file stays free of
Django imports so that the codecs can be used and tested without settings.
"""

__version__ = "0.1.0"
