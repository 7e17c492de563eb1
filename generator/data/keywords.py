"""The keyword lists, in one place (no audio dependencies: the trainer imports this on
machines without soundfile)."""

# The ten Speech Commands keywords: the synthesizer's default (real recordings of on/off
# are not available to us).
SPEECH_COMMANDS_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# The eight keywords of the default model.
DEFAULT_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")

# A broad other-word vocabulary for the `_unknown_` class (`bnnkws data synth --broad`):
# the twenty other Speech Commands words but "happy" (held out of training by the mix
# recipe, generator/data/mixing.py, to measure words never heard), words that sound like
# a keyword (yet, know, cup, town, lift, write, shop, goal ...) and everyday words. A
# deployed spotter meets any word: the class must reject what it was not shown.
BROAD_OTHER_WORDS = (
    "again", "ago", "apple", "around", "backward", "bed", "bird", "bright", "brown", "bus",
    "but", "cat", "chess", "coffee", "computer", "crown", "cup", "dawn", "dog", "done",
    "dress", "drop", "eight", "family", "felt", "fight", "five", "follow", "forward", "four",
    "garden", "ghost", "goal", "gold", "gown", "ground", "grow", "guess", "hello", "hop",
    "house", "jump", "knee", "know", "laugh", "leaf", "learn", "lefty", "lesson", "lift",
    "light", "list", "little", "loft", "marvin", "maybe", "mess", "minute", "money", "morning",
    "mountain", "music", "new", "night", "nine", "noon", "nope", "nose", "note", "now",
    "number", "off", "okay", "on", "one", "orange", "people", "please", "pop", "purple",
    "quite", "rice", "ride", "river", "seven", "sheila", "shop", "show", "six", "slow", "snow",
    "sorry", "sound", "spot", "step", "stock", "stomp", "store", "stuck", "table", "thank",
    "though", "three", "today", "toe", "town", "tree", "two", "upper", "us", "visual", "water",
    "white", "window", "wow", "write", "yeah", "yell", "yellow", "yesterday", "yet", "zero",
)  # fmt: skip
