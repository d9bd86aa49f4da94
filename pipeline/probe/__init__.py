"""``facesync probe``: measure what the API page leaves open, with a bounded sequence of calls.

``prober.py`` is the sequence, ``bounds.py`` the pure searches and made-up ids, ``journal.py`` what
makes a killed probe's images findable, ``image.py`` the probe's own images, ``table.py`` what a
person reads. ``pipeline/commands/probe.py`` opens what it needs and writes the profile
(``pipeline/config/profile.py``). What each answer changes: ``docs/service.md``.
"""
