"""The published ELMoForManyLangs (EFML) models: 44 languages, one zip each.

EFML's README (HIT-SCIR/ELMoForManyLangs) links each language's zip in the
NLPL word embeddings repository, dataset ids 136-179, at
`http://vectors.nlpl.eu/repository/11/<id>.zip`. `presets.py` makes one
preset per row (`elmo-efml-<code>`); `efml.py` reads the unpacked model
directories. Like `presets`, this imports no TensorFlow.

Mirrors, tried in order (`language_urls`): the same path over https first
(vectors.nlpl.eu serves https: projects fetch
https://vectors.nlpl.eu/repository/20/213.zip and .../20/40.zip from it), then
the http link EFML publishes. NLPL publishes no sizes or digests for these
zips (none found), so each is pinned on first use by its SHA-256
(`download.py`): an http download can be tampered with on its way only the
first time.
"""

# The URL EFML's README links (http); `language_urls` adds the https mirror.
NLPL_URL = "http://vectors.nlpl.eu/repository/11/{}.zip"
NLPL_HTTPS_URL = "https://vectors.nlpl.eu/repository/11/{}.zip"

# Code -> (language, NLPL dataset id).
LANGUAGES = {
    "ar": ("Arabic", 136),
    "bg": ("Bulgarian", 137),
    "ca": ("Catalan", 138),
    "cs": ("Czech", 139),
    "cu": ("Old Church Slavonic", 140),
    "da": ("Danish", 141),
    "de": ("German", 142),
    "el": ("Greek", 143),
    "en": ("English", 144),
    "es": ("Spanish", 145),
    "et": ("Estonian", 146),
    "eu": ("Basque", 147),
    "fa": ("Persian", 148),
    "fi": ("Finnish", 149),
    "fr": ("French", 150),
    "ga": ("Irish", 151),
    "gl": ("Galician", 152),
    "grc": ("Ancient Greek", 153),
    "he": ("Hebrew", 154),
    "hi": ("Hindi", 155),
    "hr": ("Croatian", 156),
    "hu": ("Hungarian", 157),
    "id": ("Indonesian", 158),
    "it": ("Italian", 159),
    "ja": ("Japanese", 160),
    "ko": ("Korean", 161),
    "la": ("Latin", 162),
    "lv": ("Latvian", 163),
    "nl": ("Dutch", 164),
    "nb": ("Norwegian Bokmål", 165),
    "nn": ("Norwegian Nynorsk", 166),
    "pl": ("Polish", 167),
    "pt": ("Portuguese", 168),
    "ro": ("Romanian", 169),
    "ru": ("Russian", 170),
    "sk": ("Slovak", 171),
    "sl": ("Slovene", 172),
    "sv": ("Swedish", 173),
    "tr": ("Turkish", 174),
    "ug": ("Uyghur", 175),
    "uk": ("Ukrainian", 176),
    "ur": ("Urdu", 177),
    "vi": ("Vietnamese", 178),
    "zh": ("Chinese (traditional, Wikipedia)", 179),
}


def language_url(code):
    """The download URL EFML's README links for language `code` (http)."""
    return NLPL_URL.format(LANGUAGES[code][1])


def language_urls(code):
    """The mirrors of language `code`'s zip, in the order tried: https, then EFML's http link."""
    return (NLPL_HTTPS_URL.format(LANGUAGES[code][1]), language_url(code))
