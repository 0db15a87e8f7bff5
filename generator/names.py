"""Name, street and town lists for the synthetic people (UK first, some Irish, French and German customers).

Lists are ordered by frequency: the generator draws from them with Zipf-like weights, so common names collide the
way they do in real customer bases (two different "James Smith"s are not one person).
"""

from __future__ import annotations

FIRST_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "GB": {
        "F": ("Olivia", "Emily", "Sarah", "Jessica", "Elizabeth", "Sophie", "Charlotte", "Emma", "Rebecca", "Laura",
              "Hannah", "Amy", "Katherine", "Lucy", "Victoria", "Rachel", "Margaret", "Susan", "Jennifer", "Amelia",
              "Isabella", "Grace", "Eleanor", "Abigail", "Samantha", "Alexandra", "Catherine", "Deborah", "Patricia",
              "Chloe", "Zoe", "Megan", "Natalie", "Helen", "Joanne", "Claire", "Priya", "Aisha", "Fatima", "Mei"),
        "M": ("James", "Oliver", "Thomas", "William", "Jack", "Daniel", "Robert", "Michael", "David", "Matthew",
              "Christopher", "Joseph", "Samuel", "Benjamin", "Alexander", "Richard", "Edward", "Charles", "Andrew",
              "Anthony", "Jonathan", "Nicholas", "Harry", "George", "Peter", "Stephen", "Mark", "Paul", "Luke",
              "Adam", "Ryan", "Liam", "Mohammed", "Arjun", "Raj", "Wei", "Kwame", "Tobias", "Patrick", "Gareth"),
    },
    "IE": {
        "F": ("Siobhan", "Aoife", "Niamh", "Ciara", "Mary", "Orla", "Sinead", "Grainne", "Roisin", "Catherine"),
        "M": ("Sean", "Ciaran", "Patrick", "Declan", "Eoin", "Padraig", "Conor", "Michael", "Darragh", "Cathal"),
    },
    "FR": {
        "F": ("Marie", "Camille", "Élodie", "Chloé", "Manon", "Léa", "Sophie", "Amélie", "Céline", "Isabelle"),
        "M": ("Jean", "Pierre", "Louis", "Hugo", "Thomas", "Nicolas", "François", "Julien", "Antoine", "Mathieu"),
    },
    "DE": {
        "F": ("Anna", "Lena", "Julia", "Katharina", "Sabine", "Ursula", "Jana", "Lea", "Monika", "Sophie"),
        "M": ("Jürgen", "Lukas", "Maximilian", "Stefan", "Thomas", "Andreas", "Michael", "Felix", "Jonas", "Klaus"),
    },
}

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "GB": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright",
           "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Patel",
           "Khan", "Lewis", "James", "Phillips", "Mason", "Mitchell", "Rose", "Davis", "Rodriguez", "Cox", "Alexander",
           "Hughes", "Edwards", "Turner", "Harris", "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark",
           "Lee", "King", "Baker", "Harrison", "Morgan", "Allen", "Scott", "Young", "Watson", "Bennett", "Gray",
           "Carter", "Shaw", "Singh", "Ahmed", "Chen", "O'Brien", "McDonald", "Fitzgerald", "Smith-Jones",
           "Ashworth", "Pemberton", "Nkemelu", "Okafor", "Kowalski", "Nowak", "MacLeod"),
    "IE": ("Murphy", "Kelly", "O'Sullivan", "Walsh", "O'Connor", "McCarthy", "Byrne", "Ryan", "O'Neill", "Doyle",
           "Gallagher", "Kavanagh"),
    "FR": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Lefèvre", "Moreau",
           "Girard", "Rousseau"),
    "DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
           "Schäfer", "Koch"),
}

NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob", "Bobby"), "Elizabeth": ("Liz", "Beth", "Lizzie"), "William": ("Bill", "Will", "Billy"),
    "Margaret": ("Maggie", "Peggy", "Meg"), "James": ("Jim", "Jimmy", "Jamie"), "Katherine": ("Kate", "Kathy", "Katie"),
    "Michael": ("Mike", "Mick"), "Jennifer": ("Jen", "Jenny"), "Thomas": ("Tom", "Tommy"), "Christopher": ("Chris",),
    "Daniel": ("Dan", "Danny"), "Matthew": ("Matt",), "Anthony": ("Tony",), "Richard": ("Rick", "Dick", "Richie"),
    "Joseph": ("Joe", "Joey"), "Charles": ("Charlie", "Chuck"), "Edward": ("Ed", "Ted", "Eddie"),
    "Alexander": ("Alex", "Sandy"), "Samuel": ("Sam", "Sammy"), "Benjamin": ("Ben", "Benny"), "Jonathan": ("Jon",),
    "Nicholas": ("Nick", "Nicky"), "Andrew": ("Andy", "Drew"), "Patricia": ("Pat", "Patty", "Trish"),
    "Susan": ("Sue", "Susie"), "Deborah": ("Debbie", "Deb"), "Rebecca": ("Becky", "Becca"),
    "Victoria": ("Vicky", "Tori"), "Alexandra": ("Alex", "Lexi"), "Samantha": ("Sam", "Sammy"),
    "Jessica": ("Jess", "Jessie"), "Catherine": ("Cathy", "Cath", "Kate"), "Abigail": ("Abby", "Abi"),
    "Eleanor": ("Ellie", "Nell"), "Charlotte": ("Lottie", "Charlie"), "Olivia": ("Liv", "Livvy"),
    "Amelia": ("Millie", "Amy"), "Isabella": ("Bella", "Izzy"), "Emily": ("Em", "Emmy"), "Stephen": ("Steve",),
    "Peter": ("Pete",), "Harry": ("Haz",), "Jack": ("Jacko",), "Patrick": ("Paddy", "Pat"), "Padraig": ("Paddy",),
    "Maximilian": ("Max",), "Katharina": ("Kathi",), "Nicolas": ("Nico",), "Mathieu": ("Matt",),
    "Sophie": ("Soph",), "Hannah": ("Han",), "Rachel": ("Rach",), "Natalie": ("Nat",), "Gareth": ("Gaz",),
    "Mohammed": ("Mo",), "Declan": ("Dec",), "Lucy": ("Lu",), "Megan": ("Meg",),
}

EMAIL_DOMAINS: dict[str, tuple[str, ...]] = {
    "GB": ("gmail.com", "hotmail.co.uk", "yahoo.co.uk", "outlook.com", "btinternet.com", "icloud.com", "sky.com",
           "live.co.uk", "googlemail.com", "protonmail.com"),
    "IE": ("gmail.com", "eircom.net", "hotmail.com", "outlook.ie", "yahoo.ie"),
    "FR": ("orange.fr", "free.fr", "gmail.com", "laposte.net", "sfr.fr"),
    "DE": ("web.de", "gmx.de", "gmail.com", "t-online.de", "outlook.de"),
}
EMAIL_TYPOS = {"gmail.com": "gmial.com", "hotmail.co.uk": "hotmial.co.uk", "outlook.com": "outlok.com",
               "yahoo.co.uk": "yaho.co.uk", "icloud.com": "iclod.com", "btinternet.com": "btinternet.co"}

# (town, postcode area(s), weight)
GB_TOWNS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("London", ("E", "N", "NW", "SE", "SW", "W", "EC", "WC"), 14.0), ("Manchester", ("M",), 4.0),
    ("Birmingham", ("B",), 4.5), ("Leeds", ("LS",), 3.0), ("Glasgow", ("G",), 3.0), ("Edinburgh", ("EH",), 2.5),
    ("Bristol", ("BS",), 2.3), ("Liverpool", ("L",), 2.3), ("Cardiff", ("CF",), 1.8), ("Sheffield", ("S",), 2.0),
    ("Newcastle upon Tyne", ("NE",), 1.6), ("Nottingham", ("NG",), 1.6), ("Leicester", ("LE",), 1.5),
    ("Brighton", ("BN",), 1.2), ("Oxford", ("OX",), 0.8), ("Cambridge", ("CB",), 0.8), ("Belfast", ("BT",), 1.4),
    ("Southampton", ("SO",), 1.1), ("Norwich", ("NR",), 0.8), ("York", ("YO",), 0.7), ("Reading", ("RG",), 0.9),
    ("Coventry", ("CV",), 1.0), ("Aberdeen", ("AB",), 0.8), ("Swansea", ("SA",), 0.7), ("Exeter", ("EX",), 0.6),
)
GB_TOWN_VARIANTS = {"Newcastle upon Tyne": ("Newcastle", "NEWCASTLE UPON TYNE", "Newcastle-upon-Tyne")}
GB_STREETS = ("High", "Station", "Church", "Park", "Victoria", "Green", "Manor", "Kings", "Queens", "Mill",
              "School", "Albert", "York", "Springfield", "Windsor", "Grange", "Highfield", "Meadow", "Orchard",
              "Chestnut", "Beech", "Oak", "Elm", "Willow", "Cedar", "Mount Pleasant", "North", "South", "West",
              "St John's", "Cromwell", "Wellington", "Nelson", "Stanley", "Riverside", "Brook", "Hillside", "Farm",
              "Castle", "Abbey")
STREET_TYPES = ("Road", "Street", "Lane", "Avenue", "Close", "Drive", "Way", "Gardens", "Crescent", "Place",
                "Grove", "Terrace")
STREET_ABBREVIATIONS = {"Road": "Rd", "Street": "St", "Avenue": "Ave", "Lane": "Ln", "Drive": "Dr", "Close": "Cl",
                        "Crescent": "Cres", "Gardens": "Gdns", "Place": "Pl", "Terrace": "Terr", "Grove": "Gr"}

IE_TOWNS = (("Dublin", ("D01", "D02", "D04", "D06", "D08", "D12", "D15", "D24")), ("Cork", ("T12", "T23")),
            ("Galway", ("H91",)), ("Limerick", ("V94",)))
IE_STREETS = ("Main", "Harbour", "Church", "Abbey", "O'Connell", "Grafton", "Patrick", "Bridge", "Dock", "Castle")
FR_TOWNS = (("Paris", 75001, 75020), ("Lyon", 69001, 69009), ("Marseille", 13001, 13016), ("Toulouse", 31000, 31500),
            ("Nice", 6000, 6300))
FR_STREETS = ("Rue de la Paix", "Rue Victor Hugo", "Avenue Jean Jaurès", "Boulevard Voltaire", "Rue du Moulin",
              "Rue de l'Église", "Place de la République", "Rue Pasteur")
DE_TOWNS = (("Berlin", 10115, 14199), ("München", 80331, 81929), ("Hamburg", 20095, 22769), ("Köln", 50667, 51149),
            ("Frankfurt am Main", 60306, 60599))
DE_STREETS = ("Hauptstraße", "Schulstraße", "Bahnhofstraße", "Gartenweg", "Lindenallee", "Bergstraße",
              "Goethestraße", "Kirchweg")
