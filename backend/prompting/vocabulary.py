"""The words the rule-based planner knows: styles, lighting, places, camera moves, and the function words
that tell a subject from a setting. Labels map to the words that evidence them; order matters where
noted (the first label whose word appears wins).
"""

from __future__ import annotations

# Keyword → canonical style label. The first label with a matching word wins.
STYLES: dict[str, tuple[str, ...]] = {
    "anime": ("anime", "manga", "studio ghibli", "cel shaded", "cel-shaded"),
    "animation": ("pixar", "3d animation", "cartoon", "claymation", "animated", "stop motion", "stop-motion"),
    "painting": ("oil painting", "watercolor", "watercolour", "painting", "impressionist", "painted", "gouache",
                 "acrylic", "ink wash"),
    "vintage film": ("vintage", "retro", "1970s", "1980s", "super 8", "film grain", "8mm", "16mm", "vhs"),
    "noir": ("noir", "black and white", "black-and-white", "monochrome"),
    "fantasy": ("fantasy", "magical", "dragon", "enchanted", "fairy", "wizard", "elven", "mythical"),
    "sci-fi": ("sci-fi", "science fiction", "cyberpunk", "futuristic", "spaceship", "neon city", "astronaut",
               "astronauts", "robot", "android", "space station"),
    "documentary": ("documentary", "wildlife", "nature footage", "national geographic"),
    "cinematic": ("cinematic", "film still", "movie", "anamorphic", "epic", "blockbuster"),
}
LIGHTING: dict[str, tuple[str, ...]] = {
    "golden hour": ("golden hour", "sunset", "sunrise", "dusk", "dawn", "twilight"),
    "night": ("night", "nighttime", "moonlight", "moonlit", "midnight", "starry", "starlit"),
    "neon": ("neon",),
    "overcast": ("overcast", "cloudy", "foggy", "fog", "mist", "misty", "rainy", "rain", "drizzle", "storm",
                 "stormy"),
    "studio lighting": ("studio lighting", "softbox", "studio"),
    "daylight": ("daylight", "midday", "noon", "sunny", "bright day", "broad daylight", "afternoon", "morning"),
    "candlelight": ("candle", "candles", "candlelight", "candlelit", "firelight", "campfire", "fireplace"),
    "backlit": ("backlit", "silhouette", "silhouetted", "rim light"),
}
LIGHT_PHRASES: dict[str, str] = {
    "golden hour": "warm golden hour light",
    "night": "moody night lighting",
    "neon": "glowing neon light",
    "overcast": "soft diffused light",
    "studio lighting": "controlled studio lighting",
    "daylight": "bright natural daylight",
    "candlelight": "flickering warm candlelight",
    "backlit": "strong backlight with rim light",
    "natural": "natural light",
}

# Places. Multi-word entries first where a single word would cut them short ("living room" before "room").
SETTINGS: tuple[str, ...] = (
    "outer space", "deep space", "coral reef", "living room", "train station", "subway station", "space station",
    "city street", "night market", "rice field", "wheat field", "sunflower field", "bamboo forest", "rain forest",
    "rainforest", "mountain road", "country road", "race track", "football pitch", "concert hall", "throne room",
    "beach", "shore", "coast", "coastline", "ocean", "sea", "bay", "harbor", "harbour", "port", "pier", "dock",
    "island", "lagoon", "reef", "forest", "woods", "woodland", "jungle", "grove", "orchard", "vineyard",
    "desert", "dunes", "canyon", "valley", "mountain", "mountains", "hills", "hillside", "cliff", "cliffs",
    "volcano", "glacier", "tundra", "arctic", "savanna", "prairie", "plains", "steppe", "swamp", "marsh",
    "river", "stream", "creek", "lake", "pond", "waterfall", "cave", "cavern", "field", "meadow", "garden",
    "park", "farm", "barn", "ranch", "city", "town", "village", "street", "alley", "avenue", "boulevard",
    "square", "plaza", "market", "bazaar", "downtown", "skyline", "rooftop", "roof", "bridge", "highway",
    "road", "tunnel", "railway", "station", "airport", "runway", "castle", "palace", "temple", "cathedral",
    "church", "ruins", "tower", "lighthouse", "fortress", "kitchen", "room", "bedroom", "bathroom", "office",
    "library", "classroom", "museum", "gallery", "studio", "warehouse", "factory", "laboratory", "lab",
    "restaurant", "cafe", "café", "bar", "pub", "diner", "shop", "stage", "arena", "stadium", "theater",
    "theatre", "ballroom", "hallway", "corridor", "attic", "basement", "courtyard", "porch", "balcony",
    "space", "sky", "clouds", "underwater", "snow", "ice", "battlefield", "spaceship", "planet", "moon",
    "table", "desk", "windowsill", "window", "shelf", "bed", "sofa", "couch", "floor", "countertop",
)

# Camera moves: label → the phrases that say it. The first label with a matching phrase wins.
CAMERA: dict[str, tuple[str, ...]] = {
    "aerial": ("aerial", "drone shot", "drone footage", "bird's-eye", "bird's eye", "birds eye", "overhead shot",
               "top-down", "top down view"),
    "tracking": ("tracking shot", "tracking camera", "follow cam", "following shot", "camera follows",
                 "camera tracks", "dolly alongside"),
    "orbit": ("orbit shot", "orbiting camera", "camera orbits", "camera circles", "360 shot", "arc shot"),
    "slow push in": ("push in", "pushes in", "pushing in", "dolly in", "dolly zoom", "zoom in", "zooms in",
                     "zooming in", "camera approaches", "slowly approaching"),
    "pull back": ("pull back", "pulls back", "pulling back", "pull out", "zoom out", "zooms out", "dolly out"),
    "pan": ("panning shot", "pan across", "pans across", "camera pans", "panning across", "sweeping shot"),
    "close-up": ("extreme close-up", "close-up", "close up", "closeup", "macro"),
    "handheld": ("handheld", "hand-held", "shaky cam", "shaky camera"),
    "wide shot": ("wide shot", "establishing shot", "wide angle", "wide-angle", "long shot"),
    "static": ("static shot", "static camera", "locked-off", "locked off", "tripod shot"),
}
# How each move looks at the start, middle and end of the shot (keyframe framing) ...
CAMERA_ARCS: dict[str, tuple[str, str, str]] = {
    "slow push in": ("wide shot", "medium shot", "close shot"),
    "pull back": ("close shot", "medium shot", "wide shot"),
    "aerial": ("high aerial view", "aerial view", "low aerial view"),
    "tracking": ("tracking shot from behind", "tracking shot from the side", "tracking shot from the front"),
    "orbit": ("front view", "three-quarter view", "side view"),
    "pan": ("view from the left", "centred view", "view from the right"),
    "close-up": ("close-up", "close-up", "close-up"),
    "handheld": ("handheld shot", "handheld shot", "handheld shot"),
    "wide shot": ("wide shot", "wide shot", "wide shot"),
    "static": ("", "", ""),  # a locked camera adds no framing words: the action carries the change
}
# ... and how it moves during a segment (motion text for engines that read it).
CAMERA_MOTION: dict[str, str] = {
    "slow push in": "camera slowly pushes in",
    "pull back": "camera slowly pulls back",
    "aerial": "aerial camera gliding smoothly",
    "tracking": "camera tracking the subject",
    "orbit": "camera orbiting the subject",
    "pan": "camera panning slowly",
    "close-up": "close-up, steady camera",
    "handheld": "handheld camera, gentle sway",
    "wide shot": "wide shot, steady camera",
    "static": "static camera",
}

# Words that open a framing phrase: "a cinematic shot of X" is about X.
FRAMING_NOUNS = ("shot", "video", "footage", "clip", "scene", "image", "photo", "photograph", "view", "timelapse",
                 "time-lapse", "close-up", "closeup", "portrait", "painting", "illustration", "render", "picture",
                 "film", "animation", "drawing", "sketch")
ARTICLES = frozenset({"a", "an", "the"})
DETERMINERS = ARTICLES | frozenset({
    "this", "that", "these", "those", "its", "his", "her", "their", "our", "my", "your", "some", "many",
    "several", "few", "every", "each", "another", "any", "one", "two", "three", "four", "five", "six", "seven",
    "eight", "nine", "ten", "dozens", "hundreds", "thousands", "no",
})
# Prepositions that open a place or a path (a subject ends before them; "of" and "with" bind to it).
PREPOSITIONS = frozenset({
    "in", "on", "at", "over", "under", "above", "below", "beneath", "across", "through", "along", "around",
    "inside", "into", "onto", "near", "beside", "by", "between", "among", "behind", "towards", "toward", "past",
    "within", "atop", "amid", "amidst", "against", "underneath", "outside", "during", "from", "down", "up",
    "beyond", "throughout", "upon", "after", "before", "via", "off", "out",
})
CONJUNCTIONS = frozenset({"and", "or", "but", "yet", "while", "as", "then", "nor", "so", "although", "though",
                          "whereas", "until", "when", "where", "instead", "rather"})
PARTICLES = frozenset({"up", "down", "away", "out", "off", "apart", "together", "around", "back", "forward",
                       "open", "shut", "free", "loose", "upward", "upwards", "downward", "downwards", "aside"})
PRONOUNS_PLURAL = frozenset({"they", "we", "you", "both", "people", "children", "men", "women", "mice", "geese",
                             "feet", "teeth", "sheep", "fish", "deer", "crowd", "couple", "family", "team"})
# Common adjectives: an -ing word after one of these is itself an adjective ("a huge burning castle").
ADJECTIVES = frozenset({
    "big", "small", "huge", "giant", "tiny", "little", "large", "tall", "short", "long", "old", "young", "new",
    "ancient", "red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black", "grey", "gray",
    "brown", "golden", "silver", "dark", "bright", "light", "pale", "deep", "vast", "wide", "narrow", "quiet",
    "loud", "calm", "wild", "beautiful", "majestic", "lonely", "empty", "busy", "crowded", "slow", "fast",
    "gentle", "soft", "hard", "hot", "cold", "warm", "cool", "wet", "dry", "massive", "enormous", "colorful",
    "colourful", "vibrant", "misty", "snowy", "sunny", "rainy", "stormy", "foggy", "dusty", "rusty", "shiny",
    "glowing", "mysterious", "magical", "eerie", "ruined", "abandoned", "frozen", "lush", "rocky", "sandy",
    "still", "very", "glass", "wooden", "stone", "metal", "paper", "crystal", "neon", "vintage", "modern",
})
# -ing words that are nouns or adjectives, never the action.
ING_NOUNS = frozenset({
    "morning", "evening", "lighting", "building", "buildings", "ceiling", "painting", "paintings", "thing",
    "king", "ring", "spring", "string", "wing", "wedding", "pudding", "something", "nothing", "everything",
    "anything", "clothing", "sibling", "setting", "railing", "icing", "frosting", "awning", "bedding",
    "lightning", "dumpling", "earring", "viking", "darling", "duckling", "seedling", "sapling", "offspring",
    "herring", "during", "amazing", "stunning", "interesting", "housing", "ending", "beginning", "feeling",
    "drawing", "recording", "rendering", "shading", "framing", "tracking", "panning", "zooming", "outing",
    "boring", "charming", "breathtaking",
})
