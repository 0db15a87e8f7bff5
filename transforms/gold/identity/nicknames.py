"""Common English given-name variants mapped to one canonical form (data, not logic)."""

from __future__ import annotations

# canonical name -> variants (nicknames, short forms, common alternative spellings)
_GROUPS: dict[str, tuple[str, ...]] = {
    "alexander": ("alex", "alec", "sandy", "xander", "lex"),
    "alexandra": ("alexa", "lexi", "sasha", "sandra"),
    "andrew": ("andy", "drew"),
    "anthony": ("tony", "ant"),
    "benjamin": ("ben", "benny", "benji"),
    "catherine": ("cathy", "cath", "kate", "katie", "kathryn", "katherine", "kathy", "kat", "katy", "kay"),
    "charles": ("charlie", "chuck", "chas", "chaz"),
    "christopher": ("chris", "kit", "topher"),
    "christine": ("chrissy", "christina", "tina"),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davey", "davy"),
    "deborah": ("debbie", "debra", "deb"),
    "dorothy": ("dot", "dottie", "dolly"),
    "edward": ("ed", "eddie", "ted", "teddy", "ned"),
    "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "libby", "lisa", "betsy", "bess", "elisabeth"),
    "eleanor": ("ellie", "nell", "nora", "elle"),
    "emily": ("em", "emmy", "milly"),
    "frances": ("fran", "fanny", "frankie"),
    "francis": ("frank",),
    "frederick": ("fred", "freddie", "freddy"),
    "gregory": ("greg",),
    "harold": ("harry", "hal"),
    "henry": ("hank", "hal"),
    "isabella": ("bella", "izzy", "isabel", "isobel"),
    "jacob": ("jake", "jack"),
    "james": ("jim", "jimmy", "jamie", "jimbo"),
    "jennifer": ("jen", "jenny", "jenn"),
    "jessica": ("jess", "jessie"),
    "john": ("johnny", "jon", "jack", "jonny"),
    "jonathan": ("jonny", "nathan"),
    "joseph": ("joe", "joey", "jo"),
    "joshua": ("josh",),
    "judith": ("judy", "jude"),
    "kenneth": ("ken", "kenny"),
    "lawrence": ("larry", "laurie", "laurence"),
    "leonard": ("len", "lenny", "leo"),
    "margaret": ("maggie", "meg", "peggy", "marge", "margie", "molly", "maisie", "greta", "madge"),
    "matthew": ("matt", "matty"),
    "michael": ("mike", "mick", "mickey", "mikey", "mitch"),
    "nicholas": ("nick", "nicky", "nico"),
    "nicolas": ("nico", "nick"),
    "mathieu": ("matt", "mat", "matthieu"),
    "patricia": ("pat", "patty", "trish", "tricia"),
    "patrick": ("paddy", "pat"),
    "padraig": ("paddy", "padraic", "podge"),
    "peter": ("pete",),
    "philip": ("phil", "pip", "phillip"),
    "rebecca": ("becky", "becca", "bex"),
    "richard": ("rich", "rick", "ricky", "dick", "richie"),
    "robert": ("rob", "bob", "bobby", "robbie", "bert", "robin"),
    "ronald": ("ron", "ronnie"),
    "samuel": ("sam", "sammy"),
    "samantha": ("sam", "sammie", "sammy"),
    "sarah": ("sara", "sally", "sadie"),
    "stephen": ("steve", "steven", "stevie", "steph"),
    "susan": ("sue", "susie", "suzanne", "suzy"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "vicki", "tori"),
    "william": ("will", "bill", "billy", "willie", "liam", "willy"),
    "zachary": ("zach", "zack"),
    "abigail": ("abby", "abi", "gail"),
    "amanda": ("mandy",),
    "angela": ("angie",),
    "barbara": ("barb", "babs"),
    "caroline": ("carol", "carrie", "carolyn"),
    "cynthia": ("cindy",),
    "donald": ("don", "donny"),
    "douglas": ("doug",),
    "gerald": ("gerry", "jerry"),
    "helen": ("nell", "ellen"),
    "jacqueline": ("jackie",),
    "joanne": ("jo", "joanna"),
    "kimberly": ("kim",),
    "louise": ("lou", "louisa"),
    "mary": ("mae", "mamie", "polly", "maria", "marie"),
    "nathaniel": ("nate", "nat"),
    "oliver": ("ollie", "olly"),
    "pamela": ("pam",),
    "raymond": ("ray",),
    "sebastian": ("seb",),
    "theodore": ("theo",),
    "valerie": ("val",),
    "walter": ("walt", "wally"),
    "charlotte": ("lottie", "lotte", "charly", "charlie"),
    "olivia": ("liv", "livvy", "livy"),
    "amelia": ("millie", "amy", "mia"),
    "harry": ("haz", "hazza"),
    "jack": ("jacko",),
    "maximilian": ("max", "maxi"),
    "katharina": ("kathi", "katja", "kati"),
    "sophie": ("soph", "sophia", "sofia"),
    "hannah": ("han", "hanna"),
    "rachel": ("rach",),
    "natalie": ("nat", "nattie", "nathalie"),
    "gareth": ("gaz", "gary"),
    "mohammed": ("mo", "mohamed", "muhammad", "mohammad"),
    "declan": ("dec",),
    "lucy": ("lu", "lucinda"),
    "megan": ("meg", "meggie"),
}


def nickname_pairs() -> list[tuple[str, str]]:
    """(variant, canonical) pairs; a variant listed under two names maps to the first (alphabetical) canonical."""
    out: dict[str, str] = {}
    for canonical in sorted(_GROUPS):
        for variant in _GROUPS[canonical]:
            out.setdefault(variant, canonical)
    return sorted(out.items())


def nickname_sets() -> list[tuple[str, str]]:
    """(name, "canonical1|canonical2...") for every name that is a variant or a canonical form; a variant of
    several names (sam: samuel, samantha) lists them all."""
    out: dict[str, set[str]] = {}
    for canonical, variants in _GROUPS.items():
        out.setdefault(canonical, set()).add(canonical)
        for variant in variants:
            out.setdefault(variant, set()).add(canonical)
    return sorted((name, "|".join(sorted(c))) for name, c in out.items())


def name_initials() -> list[tuple[str, str]]:
    """(name, "letters"): the first letters of every form of the name's group(s) (olivia -> "lo": Liv. and O.
    both abbreviate an Olivia); only names that belong to a group are listed."""
    out: dict[str, set[str]] = {}
    for canonical, variants in _GROUPS.items():
        letters = {n[0] for n in (canonical, *variants)}
        for name in (canonical, *variants):
            out.setdefault(name, set()).update(letters)
    return sorted((name, "".join(sorted(c))) for name, c in out.items())
