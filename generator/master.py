"""Master data of the simulated retailer: catalogue, stores and warehouses, channels, segments, seasonality.

Everything here is a pure function of the seed, so the same seed gives the same catalogue and locations.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np


# --- segments, channels, calendar --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """A customer segment (seed 001 business rules)."""

    name: str
    share: float
    basket_min: int
    basket_max: int
    discount_sensitivity: float  # probability a line bought by this segment carries a discount, scaled below
    frequency: float  # relative purchase frequency per person


SEGMENTS: tuple[Segment, ...] = (
    Segment("VIP", 0.05, 3, 8, 0.20, 4.0),
    Segment("Premium", 0.15, 2, 5, 0.40, 2.5),
    Segment("Loyal", 0.25, 2, 4, 0.50, 2.0),
    Segment("Regular", 0.35, 1, 3, 0.70, 1.0),
    Segment("New", 0.20, 1, 2, 0.90, 0.8),
)
SEGMENT_NAMES = tuple(s.name for s in SEGMENTS)
ANONYMOUS_SEGMENT = 3  # anonymous store shoppers buy like "Regular"

SEG_SHARE = np.array([s.share for s in SEGMENTS])
SEG_BASKET_MIN = np.array([s.basket_min for s in SEGMENTS])
SEG_BASKET_MAX = np.array([s.basket_max for s in SEGMENTS])
SEG_DISCOUNT = np.array([s.discount_sensitivity for s in SEGMENTS])
SEG_FREQUENCY = np.array([s.frequency for s in SEGMENTS])

# Seasonality (seed 001): Black Friday, holiday peak, post-holiday slump; weekday effect Monday..Sunday.
MONTH_FACTOR = {1: 0.7, 2: 0.85, 3: 0.95, 4: 1.0, 5: 1.0, 6: 0.95, 7: 0.95, 8: 1.0, 9: 1.0, 10: 1.05, 11: 1.3, 12: 1.5}
WEEKDAY_FACTOR = (0.92, 0.90, 0.95, 1.0, 1.10, 1.25, 1.05)
# Share of the day's orders that are online (the rest are store receipts), Monday..Sunday.
ONLINE_SHARE = (0.50, 0.48, 0.47, 0.46, 0.44, 0.38, 0.45)


@dataclass(frozen=True)
class Channel:
    """A sales channel and the system that records it."""

    code: str
    name: str
    system: str


CHANNELS: tuple[Channel, ...] = (
    Channel("web", "Web shop", "online"),
    Channel("app", "Mobile app", "online"),
    Channel("store", "Stores", "pos"),
)
ONLINE_CHANNELS = ("web", "app")
ONLINE_CHANNEL_P = np.array([0.6, 0.4])
DEVICE_TYPES = ("desktop", "mobile", "tablet")
DEVICE_P_BY_CHANNEL = np.array([[0.55, 0.35, 0.10], [0.0, 0.85, 0.15]])  # web, app
ORDER_STATUSES = ("placed", "shipped", "delivered", "cancelled", "returned")
ONLINE_PAYMENT_METHODS = ("card", "paypal", "gift_card", "bank_transfer")
ONLINE_PAYMENT_P = np.array([0.70, 0.20, 0.04, 0.06])
PAYMENT_STATUSES = ("captured", "refunded", "failed")
POS_PAYMENT_METHODS = ("card", "cash", "mobile", "gift_card")
POS_PAYMENT_P = np.array([0.62, 0.18, 0.16, 0.04])
EVENT_TYPES = ("view", "cart", "remove_from_cart", "purchase")
MOVEMENT_TYPES = ("inbound", "outbound", "adjustment")
CURRENCY = "GBP"

# Hour-of-day profiles (UTC); stores trade 08:00-21:00.
ONLINE_HOURS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.2, 3.2, 3.8, 4.0, 4.2, 4.8, 4.6, 4.3, 4.3, 4.6, 5.2,
                         6.0, 6.8, 7.2, 6.6, 4.8, 2.6])
STORE_HOURS = np.array([0, 0, 0, 0, 0, 0, 0, 0, 2.0, 3.5, 5.0, 6.5, 8.0, 7.5, 6.5, 6.5, 7.0, 7.5, 6.5, 4.5, 3.0, 0,
                        0, 0])
ONLINE_HOURS = ONLINE_HOURS / ONLINE_HOURS.sum()
STORE_HOURS = STORE_HOURS / STORE_HOURS.sum()


def day_volume(day: dt.date, orders_per_day: int) -> float:
    """Expected orders (online + store) on a day: base volume x month seasonality x weekday effect."""
    return orders_per_day * MONTH_FACTOR[day.month] * WEEKDAY_FACTOR[day.weekday()]


# --- locations -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    """A store or warehouse (the POS ``stores`` entity)."""

    location_id: str
    name: str
    location_type: str
    city: str
    region: str
    postcode: str
    country: str
    opened_at: dt.date
    traffic: float  # relative footfall (stores) or share of online fulfilment (warehouses)


LOCATIONS: tuple[Location, ...] = (
    Location("S01", "London Oxford Street", "store", "London", "Greater London", "W1D 1BS", "GB", dt.date(2012, 3, 1), 2.2),
    Location("S02", "London Canary Wharf", "store", "London", "Greater London", "E14 5AB", "GB", dt.date(2016, 9, 15), 1.5),
    Location("S03", "Manchester Arndale", "store", "Manchester", "North West", "M4 3AQ", "GB", dt.date(2013, 5, 20), 1.4),
    Location("S04", "Birmingham Bullring", "store", "Birmingham", "West Midlands", "B5 4BU", "GB", dt.date(2014, 11, 1), 1.3),
    Location("S05", "Leeds Trinity", "store", "Leeds", "Yorkshire", "LS1 5AT", "GB", dt.date(2015, 4, 10), 1.0),
    Location("S06", "Glasgow Buchanan", "store", "Glasgow", "Scotland", "G1 2FF", "GB", dt.date(2017, 6, 2), 1.0),
    Location("S07", "Edinburgh Princes Street", "store", "Edinburgh", "Scotland", "EH2 2ER", "GB", dt.date(2018, 2, 14), 0.9),
    Location("S08", "Bristol Cabot Circus", "store", "Bristol", "South West", "BS1 3BX", "GB", dt.date(2016, 10, 8), 0.9),
    Location("S09", "Cardiff St David's", "store", "Cardiff", "Wales", "CF10 2EF", "GB", dt.date(2019, 8, 30), 0.7),
    Location("S10", "Belfast Victoria Square", "store", "Belfast", "Northern Ireland", "BT1 4QG", "GB", dt.date(2021, 3, 26), 0.6),
    Location("W01", "Midlands Distribution Centre", "warehouse", "Daventry", "East Midlands", "NN11 8RB", "GB", dt.date(2011, 1, 10), 0.5),
    Location("W02", "North Distribution Centre", "warehouse", "Warrington", "North West", "WA5 7ZB", "GB", dt.date(2015, 7, 1), 0.3),
    Location("W03", "South Distribution Centre", "warehouse", "Basingstoke", "South East", "RG24 8GG", "GB", dt.date(2018, 9, 3), 0.2),
)
STORES = tuple(loc for loc in LOCATIONS if loc.location_type == "store")
WAREHOUSES = tuple(loc for loc in LOCATIONS if loc.location_type == "warehouse")
STORE_P = np.array([s.traffic for s in STORES]) / sum(s.traffic for s in STORES)
WAREHOUSE_P = np.array([w.traffic for w in WAREHOUSES]) / sum(w.traffic for w in WAREHOUSES)
N_STORES = len(STORES)  # location index i < N_STORES is a store; N_STORES + k is warehouse k


# --- catalogue -----------------------------------------------------------------------------------------------------
# L1 -> (margin, brands, {L2: ((L3, min price, max price), ...)})
_TREE: dict[str, tuple[float, tuple[str, ...], dict[str, tuple[tuple[str, float, float], ...]]]] = {
    "Electronics": (0.22, ("Sonora", "Voltix", "NordTech", "Pixelon", "iKarma", "Auralis"), {
        "Audio": (("Headphones", 19, 349), ("Speakers", 29, 499), ("Soundbars", 99, 899)),
        "Computing": (("Laptops", 299, 1899), ("Tablets", 129, 999), ("Accessories", 9, 129)),
        "Phones": (("Smartphones", 149, 1199), ("Cases", 7, 49), ("Chargers", 9, 59)),
        "TV & Video": (("Televisions", 249, 2499), ("Streaming Devices", 29, 149)),
    }),
    "Home & Kitchen": (0.42, ("Kitchenly", "HomeCo", "Brightwell", "Casa Nova", "Dunmore"), {
        "Cookware": (("Pans", 15, 120), ("Pots", 20, 150), ("Knives", 12, 180)),
        "Appliances": (("Kettles", 19, 129), ("Toasters", 19, 149), ("Coffee Machines", 49, 699), ("Blenders", 25, 299)),
        "Furniture": (("Sofas", 399, 2499), ("Chairs", 49, 499), ("Tables", 89, 999)),
        "Bedding": (("Duvets", 25, 199), ("Pillows", 9, 79), ("Bed Linen", 19, 149)),
    }),
    "Fashion": (0.58, ("Marlowe", "Urban Thread", "Kestrel", "Belle & Co", "Northfield"), {
        "Womens": (("Dresses", 19, 149), ("Tops", 9, 59), ("Jeans", 25, 99)),
        "Mens": (("Shirts", 15, 79), ("Jeans", 25, 99), ("Jackets", 49, 249)),
        "Shoes": (("Trainers", 29, 159), ("Boots", 49, 199), ("Sandals", 15, 69)),
        "Accessories": (("Bags", 19, 299), ("Watches", 39, 499), ("Sunglasses", 15, 179)),
    }),
    "Beauty": (0.55, ("Lumiere", "PureGlow", "Botanica", "Velvet Rose"), {
        "Skincare": (("Moisturisers", 8, 65), ("Cleansers", 6, 35), ("Serums", 12, 89)),
        "Fragrance": (("Perfume", 25, 140), ("Aftershave", 22, 110)),
        "Haircare": (("Shampoo", 4, 25), ("Conditioner", 4, 25), ("Styling", 6, 45)),
    }),
    "Sports & Outdoors": (0.38, ("Peakline", "Stride", "TrailFox", "Aquilo"), {
        "Fitness": (("Yoga Mats", 12, 69), ("Dumbbells", 15, 149), ("Resistance Bands", 6, 39)),
        "Cycling": (("Bikes", 249, 1999), ("Helmets", 25, 149), ("Lights", 9, 69)),
        "Camping": (("Tents", 49, 599), ("Sleeping Bags", 25, 199), ("Backpacks", 29, 179)),
    }),
    "Toys & Games": (0.45, ("Brickworks", "PlayNest", "Gambit", "Whirly"), {
        "Building": (("Construction Sets", 9, 199), ("Blocks", 9, 49)),
        "Games": (("Board Games", 12, 69), ("Puzzles", 8, 35), ("Card Games", 5, 25)),
        "Outdoor Play": (("Scooters", 29, 149), ("Garden Toys", 9, 129)),
    }),
    "Grocery": (0.30, ("Hearth & Field", "Bean There", "Nonna's", "Crumb"), {
        "Coffee & Tea": (("Coffee Beans", 4, 24), ("Tea", 2, 12)),
        "Snacks": (("Chocolate", 1, 9), ("Crisps", 1, 5), ("Biscuits", 1, 6)),
        "Pantry": (("Pasta", 1, 5), ("Olive Oil", 4, 19), ("Sauces", 2, 7)),
    }),
    "Books & Media": (0.28, ("Quill House", "Vinylux", "Pixel Forge"), {
        "Books": (("Fiction", 6, 25), ("Non-Fiction", 8, 35), ("Childrens", 4, 18)),
        "Music": (("Vinyl", 15, 45), ("CDs", 6, 15)),
        "Video Games": (("Console Games", 19, 69), ("PC Games", 9, 59)),
    }),
}

_DESCRIPTORS = ("Classic", "Pro", "Essential", "Premium", "Eco", "Compact", "Deluxe", "Smart", "Ultra", "Everyday",
                "Signature", "Studio", "Lite", "Max", "Heritage", "Active", "Urban", "Nordic")
_SIZES = ("250g", "500g", "1kg", "6 pack", "12 pack", "750ml")
_POS_ABBREVIATIONS = {
    "PREMIUM": "PREM", "CLASSIC": "CLSC", "ESSENTIAL": "ESS", "COMPACT": "CMPCT", "DELUXE": "DLX", "SIGNATURE": "SIG",
    "HEADPHONES": "HDPHN", "SPEAKERS": "SPKR", "SOUNDBARS": "SNDBR", "LAPTOPS": "LAPTOP", "ACCESSORIES": "ACC",
    "SMARTPHONES": "PHONE", "TELEVISIONS": "TV", "STREAMING": "STRM", "DEVICES": "DEV", "MACHINES": "MACH",
    "COFFEE": "COF", "CONDITIONER": "COND", "MOISTURISERS": "MOIST", "CLEANSERS": "CLNSR", "CONSTRUCTION": "CONSTR",
    "CHOCOLATE": "CHOC", "BISCUITS": "BISC", "CHILDRENS": "CHLD", "FICTION": "FIC", "RESISTANCE": "RES",
    "DUMBBELLS": "DBELL", "BACKPACKS": "BKPK", "SLEEPING": "SLP", "SUNGLASSES": "SUNGL", "TRAINERS": "TRNR",
}


def slug(text: str) -> str:
    """Lower-case code of a category name: "Home & Kitchen" -> "home_kitchen"."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@dataclass
class Catalogue:
    """The product master: arrays indexed by product position (products are grouped by leaf category)."""

    sku: np.ndarray  # int64 SKU numbers (shared by online ``sku`` and POS ``item_code``)
    name: list[str]
    brand: list[str]  # "" = own label (no brand)
    leaf: np.ndarray  # leaf-category index per product
    price: np.ndarray  # current price in pence (changes over the days)
    cost: np.ndarray  # unit cost in pence
    popularity: np.ndarray  # purchase probability per product (sums to 1)
    leaf_names: list[tuple[str, str, str]]  # (L1, L2, L3) per leaf
    leaf_code: list[str]  # "electronics.audio.headphones"
    leaf_department: list[str]  # "Electronics > Audio > Headphones"
    leaf_category_id: np.ndarray  # REES46-style numeric category id per leaf
    leaf_start: np.ndarray  # first product position of each leaf
    leaf_size: np.ndarray  # number of products of each leaf
    pos_description: list[str]
    pos_brand: list[str]  # brand as the store system spells it ("" = missing)

    @property
    def size(self) -> int:
        """Number of products."""
        return len(self.sku)


def _round_price(pence: np.ndarray) -> np.ndarray:
    """Retail price points: x.99 above 10 pounds, x.49/x.99 below."""
    pounds = np.maximum(pence // 100, 0)
    cheap = pence < 1000
    half = (pence % 100) < 50
    return np.where(cheap & half, pounds * 100 + 49, pounds * 100 + 99)


def build_catalogue(rng: np.random.Generator, n_products: int = 500) -> Catalogue:
    """About ``n_products`` SKUs across a 3-level category tree, with brands, prices, costs and popularity."""
    leaves: list[tuple[str, str, str, float, float, float, tuple[str, ...]]] = []
    for l1, (margin, brands, l2s) in _TREE.items():
        for l2, l3s in l2s.items():
            for l3, lo, hi in l3s:
                leaves.append((l1, l2, l3, lo, hi, margin, brands))
    n_leaves = len(leaves)
    # Products per leaf: every leaf gets at least 3, the rest spread with some leaves deeper than others.
    weights = rng.gamma(2.0, 1.0, n_leaves)
    extra = n_products - 3 * n_leaves
    counts = 3 + np.floor(weights / weights.sum() * extra).astype(int)
    counts[: n_products - counts.sum()] += 1
    leaf = np.repeat(np.arange(n_leaves), counts)
    n = len(leaf)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    skus = rng.choice(np.arange(1_000_000, 9_999_999), size=n, replace=False).astype(np.int64)
    lo = np.array([leaves[i][3] for i in leaf])
    hi = np.array([leaves[i][4] for i in leaf])
    price = _round_price(np.exp(rng.uniform(np.log(lo), np.log(hi))) * 100).astype(np.int64)
    margin = np.array([leaves[i][5] for i in leaf]) + rng.uniform(-0.08, 0.08, n)
    cost = np.maximum(1, np.round(price * (1 - margin))).astype(np.int64)
    # Popularity: a long tail (Zipf-like over a random order), cheaper items sell more often.
    rank = rng.permutation(n) + 1
    popularity = rank ** -0.8 / np.sqrt(price / 100 + 5)
    popularity = popularity / popularity.sum()

    names: list[str] = []
    brands: list[str] = []
    pos_desc: list[str] = []
    pos_brand: list[str] = []
    desc_pick = rng.integers(0, len(_DESCRIPTORS), n)
    model_pick = rng.integers(1, 99, n)
    brand_pick = rng.integers(0, 1_000_000, n)
    own_label = rng.random(n) < 0.06
    brand_variant = rng.random(n)
    size_pick = rng.integers(0, len(_SIZES), n)
    for i in range(n):
        l1, l2, l3, *_rest, brand_list = leaves[leaf[i]]
        brand = "" if own_label[i] else brand_list[brand_pick[i] % len(brand_list)]
        descriptor = _DESCRIPTORS[desc_pick[i]]
        item = l3[:-1] if l3.endswith("s") and l3 not in ("Jeans", "Dumbbells", "Puzzles", "Childrens", "Accessories") else l3
        if l3 == "Televisions":
            name = f'{brand or "Home"} {descriptor} {model_pick[i] % 4 * 10 + 43}" 4K Television'
        elif l1 == "Grocery":
            name = f"{brand or 'Own Label'} {descriptor} {item}, {_SIZES[size_pick[i]]}"
        else:
            name = f"{brand or 'Own Label'} {descriptor} {item} {chr(65 + model_pick[i] % 26)}{model_pick[i] * 10}"
        names.append(name)
        brands.append(brand)
        words = [_POS_ABBREVIATIONS.get(w, w) for w in re.sub(r"[^A-Z0-9 ]", "", name.upper()).split()]
        pos_desc.append(" ".join(words)[:32].strip())
        v = brand_variant[i]
        if not brand:
            pos_brand.append("")
        elif v < 0.45:
            pos_brand.append(brand.upper())
        elif v < 0.85:
            pos_brand.append(brand)
        elif v < 0.95:
            pos_brand.append(brand.lower())
        else:
            pos_brand.append("")  # the store system lost the brand
    leaf_names = [(lf[0], lf[1], lf[2]) for lf in leaves]
    return Catalogue(
        sku=skus,
        name=names,
        brand=brands,
        leaf=leaf,
        price=price,
        cost=cost,
        popularity=popularity,
        leaf_names=leaf_names,
        leaf_code=[".".join(slug(p) for p in names3) for names3 in leaf_names],
        leaf_department=[" > ".join(names3) for names3 in leaf_names],
        leaf_category_id=2_053_013_552_000_000_000 + rng.choice(999_999_999, n_leaves, replace=False).astype(np.int64),
        leaf_start=starts.astype(np.int64),
        leaf_size=counts.astype(np.int64),
        pos_description=pos_desc,
        pos_brand=pos_brand,
    )
