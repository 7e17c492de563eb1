"""The keyword lists, in one place (no audio dependencies: the trainer imports this on
machines without soundfile)."""

# The ten Speech Commands keywords: the synthesizer's default (real recordings of on/off
# are not available to us).
SPEECH_COMMANDS_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# The eight keywords of the default model.
DEFAULT_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
