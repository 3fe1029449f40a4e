"""A demo-only text-to-speech engine: Debian's espeak-ng, offline.

scripts/develop and scripts/demo put it into their Home Assistant (``tts:`` with
``platform: espeak_demo``) so a spoken message needs no cloud service. It is not part of
Voice Prompt and is never installed by HACS.
"""
