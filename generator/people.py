"""People behind the records: persons, their online accounts and POS memberships, and the ground truth of who is who.

One person can have an online account, a loyalty membership, both, or neither (then they shop anonymously). Records
of the same person disagree the way real systems do: typos, nicknames, "Last, First" order, changed or missing
emails, phone formats, moved addresses, missing fields. Two people of one household share a last name and an
address (sometimes a landline or a family email) and are still two people.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pyarrow as pa

from generator import fmt
from generator import names as N
from generator.master import SEG_FREQUENCY, SEG_SHARE, SEGMENT_NAMES, ONLINE_HOURS, STORE_HOURS

COUNTRIES = ("GB", "IE", "FR", "DE")
COUNTRY_P = (0.90, 0.04, 0.03, 0.03)
COUNTRY_NAMES = {"GB": "United Kingdom", "IE": "Ireland", "FR": "France", "DE": "Germany"}
CALLING_CODES = {"GB": "44", "IE": "353", "FR": "33", "DE": "49"}

ONLINE_SHARE = 0.70  # persons with an online account
POS_SHARE = 0.55  # persons with a loyalty membership
ONLINE_DUPLICATE_SHARE = 0.04  # online persons who open a second account (before dropping those after the window)
POS_DUPLICATE_SHARE = 0.015
HOUSEHOLD_SHARE = 0.10  # persons living with another person of the same last name
UPDATE_RATE = 0.003  # share of existing accounts whose record changes on a given day


def _cum(weights) -> list[float]:
    return list(itertools.accumulate(weights))


def _zipf(n: int, s: float = 0.9) -> list[float]:
    return _cum([1.0 / (i + 1) ** s for i in range(n)])


_FIRST_CUM = {c: {g: _zipf(len(v)) for g, v in d.items()} for c, d in N.FIRST_NAMES.items()}
_LAST_CUM = {c: _zipf(len(v), 0.8) for c, v in N.LAST_NAMES.items()}
_GB_TOWN_CUM = _cum([t[2] for t in N.GB_TOWNS])
_KEYBOARD = {
    "a": "qsz", "b": "vnh", "c": "xvd", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht", "h": "gjy", "i": "uok",
    "j": "hku", "k": "jli", "l": "ko", "m": "nj", "n": "bmh", "o": "ipl", "p": "ol", "r": "etf", "s": "adw",
    "t": "ryg", "u": "yij", "v": "cbf", "w": "qes", "y": "tuh", "z": "xas",
}
_PC_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_EIR_CHARS = "ACDEFHKNPRTVWXY0123456789"


def _ri(r: random.Random, a: int, b: int) -> int:
    """Uniform integer in [a, b] (faster than ``randint``; one ``random()`` draw)."""
    return a + int(r.random() * (b - a + 1))


def _rr(r: random.Random, a: int, b: int | None = None) -> int:
    if b is None:
        a, b = 0, a
    return a + int(r.random() * (b - a))


def _ch(r: random.Random, seq):
    return seq[int(r.random() * len(seq))]


@lru_cache(maxsize=None)
def ascii_fold(text: str) -> str:
    """``"Müller"`` -> ``"muller"``: lower-case ASCII letters, digits, dots and hyphens only."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in folded if ch.isalnum() or ch in ".-")


def typo(r: random.Random, text: str) -> str:
    """One realistic keying error: swapped, dropped, doubled or neighbouring-key letter."""
    if len(text) < 3:
        return text
    i = _rr(r, 1, len(text) - 1)
    kind = r.random()
    if kind < 0.3:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind < 0.55:
        return text[:i] + text[i + 1:]
    if kind < 0.75:
        return text[:i] + text[i] + text[i:]
    ch = text[i]
    near = _KEYBOARD.get(ch.lower())
    if not near:
        return text[:i] + text[i + 1:]
    repl = _ch(r, near)
    return text[:i] + (repl.upper() if ch.isupper() else repl) + text[i + 1:]


def phone_text(r: random.Random, country: str, nsn: str) -> str:
    """A national significant number written the way people type it (mixed formats per record)."""
    cc = CALLING_CODES[country]
    x = r.random()
    if country == "GB":
        opts = (f"+44 {nsn[:4]} {nsn[4:]}", f"0{nsn[:4]} {nsn[4:]}", f"(0){nsn[:4]}-{nsn[4:7]}-{nsn[7:]}",
                f"44{nsn}", f"0{nsn}", f"+44{nsn}", f"+44 (0){nsn[:4]} {nsn[4:]}")
        weights = (0.28, 0.30, 0.06, 0.08, 0.16, 0.08, 0.04)
    elif country == "IE":
        opts = (f"+353 {nsn[:2]} {nsn[2:5]} {nsn[5:]}", f"0{nsn[:2]} {nsn[2:5]} {nsn[5:]}", f"353{nsn}", f"0{nsn}")
        weights = (0.4, 0.35, 0.1, 0.15)
    elif country == "FR":
        pairs = " ".join(nsn[i:i + 2] for i in range(1, 9, 2))
        opts = (f"+33 {nsn[0]} {pairs}", f"0{nsn[0]} {pairs}", f"0{nsn}", f"33{nsn}")
        weights = (0.4, 0.35, 0.15, 0.1)
    else:
        opts = (f"+49 {nsn[:3]} {nsn[3:]}", f"0{nsn[:3]} {nsn[3:]}", f"49{nsn}", f"0{nsn}")
        weights = (0.4, 0.35, 0.1, 0.15)
    acc = 0.0
    for opt, w in zip(opts, weights):
        acc += w
        if x < acc:
            return opt
    return f"+{cc}{nsn}"


def _mobile(r: random.Random, country: str) -> str:
    if country == "GB":
        return f"7{_ri(r, 100, 999)}{_ri(r, 100000, 999999)}"
    if country == "IE":
        return f"8{_ch(r, '35679')}{_ri(r, 1000000, 9999999)}"
    if country == "FR":
        return f"{_ch(r, '67')}{_ri(r, 10000000, 99999999)}"
    return f"1{_ch(r, ['51', '52', '60', '70', '76'])}{_ri(r, 10000000, 99999999)}"


def _landline(r: random.Random, country: str) -> str:
    if country == "GB":
        return f"{_ch(r, ['20', '161', '121', '113', '141', '131', '117'])}{_ri(r, 1000000, 9999999)}"[:10].ljust(10, "0")
    return _mobile(r, country)


def _address(r: random.Random, country: str) -> tuple[str, str, str]:
    """(address line, town, canonical postcode) for a country."""
    if country == "GB":
        town, areas, _w = N.GB_TOWNS[bisect.bisect(_GB_TOWN_CUM, r.random() * _GB_TOWN_CUM[-1])]
        street = f"{_ch(r, N.GB_STREETS)} {_ch(r, N.STREET_TYPES)}"
        number = _ri(r, 1, 240)
        line = f"Flat {_ri(r, 1, 40)}, {number} {street}" if r.random() < 0.12 else f"{number} {street}"
        district = _ri(r, 1, 28)
        postcode = f"{_ch(r, areas)}{district} {_ri(r, 1, 9)}{_ch(r, _PC_LETTERS)}{_ch(r, _PC_LETTERS)}"
        return line, town, postcode
    if country == "IE":
        town, keys = _ch(r, N.IE_TOWNS)
        line = f"{_ri(r, 1, 180)} {_ch(r, N.IE_STREETS)} {_ch(r, ('Street', 'Road', 'Avenue', 'Lane'))}"
        return line, town, f"{_ch(r, keys)} {''.join(_ch(r, _EIR_CHARS) for _ in range(4))}"
    if country == "FR":
        town, lo, hi = _ch(r, N.FR_TOWNS)
        return f"{_ri(r, 1, 120)} {_ch(r, N.FR_STREETS)}", town, f"{_ri(r, lo, hi):05d}"
    town, lo, hi = _ch(r, N.DE_TOWNS)
    return f"{_ch(r, N.DE_STREETS)} {_ri(r, 1, 160)}", town, f"{_ri(r, lo, hi):05d}"


def _street_variant(r: random.Random, line: str, abbreviate: float, upper: float) -> str:
    out = line
    if r.random() < abbreviate:
        for full, short in N.STREET_ABBREVIATIONS.items():
            if out.endswith(" " + full):
                out = out[: -len(full)] + short
                break
    if r.random() < upper:
        out = out.upper()
    return out


def _postcode_variant(r: random.Random, postcode: str, share: float) -> str:
    if r.random() >= share:
        return postcode
    x = r.random()
    if x < 0.35:
        return postcode.lower()
    if x < 0.75:
        return postcode.replace(" ", "")
    if x < 0.9:
        return postcode.replace(" ", "  ")
    return " " + postcode.lower().replace(" ", "")


def _town_variant(r: random.Random, town: str, share: float) -> str:
    if r.random() >= share:
        return town
    if town in N.GB_TOWN_VARIANTS and r.random() < 0.6:
        return _ch(r, N.GB_TOWN_VARIANTS[town])
    return town.upper() if r.random() < 0.7 else town.lower()


def _country_text(r: random.Random, country: str, system: str) -> str:
    x = r.random()
    if country == "GB":
        if system == "online":
            return "GB" if x < 0.80 else ("United Kingdom" if x < 0.92 else "uk")
        return "UK" if x < 0.35 else ("GB" if x < 0.65 else ("United Kingdom" if x < 0.85 else "uk"))
    return country if x < 0.85 else COUNTRY_NAMES[country]


@dataclass
class People:
    """The real persons (ground truth). Attributes are lists indexed by person number; addresses change on moves."""

    person_id: list[str]
    first: list[str]
    last: list[str]
    gender: list[str]
    dob: list[int]  # epoch day
    country: list[str]
    email: list[str]
    alt_email: list[str]
    mobile: list[str]
    landline: list[str | None]
    address: list[tuple[str, str, str]]
    segment: np.ndarray
    household: list[str | None]
    family_email: list[str | None]
    signup_day: np.ndarray  # relative to the first generated day (negative = before it)
    opt_propensity: list[float]
    online_first: np.ndarray  # for people in both systems: the online account came first
    has_online: np.ndarray
    has_pos: np.ndarray

    @property
    def size(self) -> int:
        """Number of persons."""
        return len(self.person_id)

    def e164(self, p: int) -> str:
        """The person's mobile number in E.164."""
        return f"+{CALLING_CODES[self.country[p]]}{self.mobile[p]}"


ONLINE_COLUMNS = ("customer_id", "email", "first_name", "last_name", "phone", "date_of_birth", "address_line1", "city",
                  "postcode", "country", "marketing_opt_in", "created_at", "updated_at")
POS_COLUMNS = ("member_id", "loyalty_card", "full_name", "email", "phone", "birth_date", "street", "town", "post_code",
               "country", "opt_in", "joined_at", "updated_at")


@dataclass
class Accounts:
    """The customer records of one system, ordered by creation (ids are assigned in that order)."""

    system: str  # online | pos
    ids: list[str]
    person: np.ndarray
    created: np.ndarray  # epoch seconds
    updated: np.ndarray  # epoch seconds (of the latest landed version)
    created_day: np.ndarray  # relative day index
    values: dict[str, list[str | None]]  # business columns (not ids or timestamps), one list per column
    segment: np.ndarray
    weight: np.ndarray  # relative purchase frequency
    cum_weight: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cum_weight = np.cumsum(self.weight)

    @property
    def size(self) -> int:
        """Number of records (accounts or memberships)."""
        return len(self.ids)

    def active_until(self, day_index: int) -> int:
        """Number of accounts that exist on a day (accounts are sorted by creation, so a prefix)."""
        return int(np.searchsorted(self.created_day, day_index, side="right"))

    def pick(self, rng: np.random.Generator, n: int, day_index: int) -> np.ndarray:
        """``n`` account indices, weighted by purchase frequency, among the accounts existing on a day."""
        k = self.active_until(day_index)
        if k == 0 or n == 0:
            return np.full(n, -1, dtype=np.int64)
        u = rng.random(n) * self.cum_weight[k - 1]
        return np.minimum(np.searchsorted(self.cum_weight[:k], u, side="right"), k - 1).astype(np.int64)

    def rows(self, idx: np.ndarray) -> dict[str, pa.Array]:
        """Landing rows (canonical columns, source formats) for the given accounts."""
        cols = ONLINE_COLUMNS if self.system == "online" else POS_COLUMNS
        ts_style = "iso" if self.system == "online" else "pos"
        out: dict[str, pa.Array] = {}
        for c in cols:
            if c in ("customer_id", "member_id"):
                out[c] = pa.array([self.ids[i] for i in idx], pa.string())
            elif c in ("created_at", "joined_at"):
                out[c] = fmt.timestamps(self.created[idx], ts_style)
            elif c == "updated_at":
                out[c] = fmt.timestamps(self.updated[idx], ts_style)
            else:
                vals = self.values[c]
                out[c] = pa.array([vals[i] for i in idx], pa.string())
        return out


class PeopleFactory:
    """Builds persons and account records; also applies later changes (moves, opt-outs, new emails)."""

    def __init__(self, seed_words: list[int], start: dt.date, days: int) -> None:
        self.r = random.Random(int(np.random.SeedSequence(seed_words).generate_state(1, np.uint64)[0]))
        self.start = start
        self.days = days
        self.start_s = fmt.day_start(start)
        self.taken_emails: set[str] = set()
        self.taken_cards: set[str] = set()
        self.people: People | None = None

    # -- persons ---------------------------------------------------------------------------------------------------
    def _email(self, first: str, last: str, country: str, avoid_domain: str | None = None) -> str:
        r = self.r
        f, l = ascii_fold(first).replace(".", ""), ascii_fold(last).replace(".", "")
        domains = [d for d in N.EMAIL_DOMAINS[country] if d != avoid_domain] or list(N.EMAIL_DOMAINS[country])
        domain = _ch(r, domains)
        x = r.random()
        if x < 0.35:
            local = f"{f}.{l}"
        elif x < 0.55:
            local = f"{f}{l}"
        elif x < 0.70:
            local = f"{f[0]}{l}"
        elif x < 0.85:
            local = f"{f}.{l}{_ri(r, 1, 99)}"
        elif x < 0.93:
            local = f"{l}{f[0]}{_ri(r, 60, 99)}"
        else:
            local = f"{f}_{l}"
        email = f"{local}@{domain}"
        while email in self.taken_emails:
            email = f"{local}{_ri(r, 1, 9999)}@{domain}"
        self.taken_emails.add(email)
        return email

    def build_people(self, n: int, np_rng: np.random.Generator) -> People:
        """``n`` persons with names, birth dates, contact details, addresses, segments, households and sign-up days."""
        r = self.r
        country_cum = _cum(COUNTRY_P)
        first, last, gender, dob, country, addr = [], [], [], [], [], []
        start_day = fmt.epoch_day(self.start)
        for _ in range(n):
            c = COUNTRIES[bisect.bisect(country_cum, r.random())]
            g = "F" if r.random() < 0.51 else "M"
            fl = N.FIRST_NAMES[c][g]
            first.append(fl[bisect.bisect(_FIRST_CUM[c][g], r.random() * _FIRST_CUM[c][g][-1])])
            ll = N.LAST_NAMES[c]
            last.append(ll[bisect.bisect(_LAST_CUM[c], r.random() * _LAST_CUM[c][-1])])
            gender.append(g)
            age_years = min(88, 18 + int(r.gammavariate(3.0, 8.0)))
            dob.append(start_day - age_years * 365 - _ri(r, 0, 364))
            country.append(c)
            addr.append(_address(r, c))
        household: list[str | None] = [None] * n
        landline: list[str | None] = [None] * n
        family_email_flag = [False] * n
        n_pairs = int(n * HOUSEHOLD_SHARE / 2)
        if n_pairs:
            members = r.sample(range(n), 2 * n_pairs)
            for h in range(n_pairs):
                a, b = members[2 * h], members[2 * h + 1]
                hid = f"H{h + 1:07d}"
                household[a] = household[b] = hid
                last[b], country[b], addr[b] = last[a], country[a], addr[a]
                if gender[b] == gender[a] and r.random() < 0.8:
                    gender[b] = "M" if gender[a] == "F" else "F"
                    fl = N.FIRST_NAMES[country[b]][gender[b]]
                    first[b] = fl[bisect.bisect(_FIRST_CUM[country[b]][gender[b]], r.random() * _FIRST_CUM[country[b]][gender[b]][-1])]
                if first[b] == first[a]:
                    first[b] = N.FIRST_NAMES[country[b]][gender[b]][0 if first[a] != N.FIRST_NAMES[country[b]][gender[b]][0] else 1]
                dob[b] = dob[a] + _ri(r, -8 * 365, 8 * 365)
                if r.random() < 0.15:
                    landline[a] = landline[b] = _landline(r, country[a])
                if r.random() < 0.05:
                    family_email_flag[a] = family_email_flag[b] = True
        email, alt_email, mobile, family_email = [], [], [], []
        fam_by_household: dict[str, str] = {}
        for i in range(n):
            e = self._email(first[i], last[i], country[i])
            email.append(e)
            alt_email.append(self._email(first[i], last[i], country[i], avoid_domain=e.split("@")[1]))
            mobile.append(_mobile(r, country[i]))
            fe = None
            if family_email_flag[i]:
                hid = household[i]
                if hid not in fam_by_household:
                    fam_by_household[hid] = self._email("the", ascii_fold(last[i]) + "family", country[i])
                fe = fam_by_household[hid]
            family_email.append(fe)
        segment = np_rng.choice(len(SEG_SHARE), size=n, p=SEG_SHARE)
        new_share = min(0.2, 0.02 + 0.004 * self.days)
        is_new = np_rng.random(n) < new_share
        signup = np.where(is_new, np_rng.integers(0, self.days, n), -np_rng.integers(1, 3 * 365, n))
        self.people = People(
            person_id=[f"P{i + 1:07d}" for i in range(n)],
            first=first, last=last, gender=gender, dob=dob, country=country, email=email, alt_email=alt_email,
            mobile=mobile, landline=landline, address=addr, segment=segment, household=household,
            family_email=family_email, signup_day=signup, opt_propensity=[r.random() for _ in range(n)],
            online_first=np_rng.random(n) < 0.5,
            has_online=np_rng.random(n) < ONLINE_SHARE,
            has_pos=np_rng.random(n) < POS_SHARE,
        )
        return self.people

    # -- accounts --------------------------------------------------------------------------------------------------
    def _name_variant(self, first: str, nick: float, typo_share: float) -> str:
        r = self.r
        x = r.random()
        if x < nick and first in N.NICKNAMES:
            return _ch(r, N.NICKNAMES[first])
        if x < nick + typo_share:
            return typo(r, first)
        return first

    def _online_values(self, p: int, duplicate: bool) -> dict[str, str | None]:
        r, P = self.r, self.people
        first = self._name_variant(P.first[p], 0.08 if not duplicate else 0.3, 0.04)
        if r.random() < 0.02:
            first = first.lower()
        last = P.last[p]
        y = r.random()
        if y < 0.04:
            last = typo(r, last)
        elif y < 0.06:
            last = last.lower()
        elif y < 0.07:
            last = last.upper()
        if duplicate:
            email = self._email(P.first[p], P.last[p], P.country[p], avoid_domain=P.email[p].split("@")[1])
        else:
            email = P.email[p] if r.random() < 0.9 else P.alt_email[p]
        if r.random() < 0.03:
            local, dom = email.split("@")
            email = f"{'.'.join(s.capitalize() for s in local.split('.'))}@{dom.capitalize()}"
        country = P.country[p]
        phone = None if r.random() < 0.25 else phone_text(r, country, P.mobile[p])
        dob = None if r.random() < 0.40 else (fmt.EPOCH + dt.timedelta(days=P.dob[p])).isoformat()
        if r.random() < 0.02:
            line = town = postcode = None
        else:
            line, town, postcode = P.address[p] if r.random() >= 0.08 else _address(r, country)
            line = _street_variant(r, line, 0.15, 0.01)
            town = _town_variant(r, town, 0.05)
            postcode = _postcode_variant(r, postcode, 0.15)
        opt = (P.opt_propensity[p] < 0.45) != (r.random() < 0.1)
        return {
            "email": email, "first_name": first, "last_name": last, "phone": phone, "date_of_birth": dob,
            "address_line1": line, "city": town, "postcode": postcode,
            "country": _country_text(r, country, "online"), "marketing_opt_in": "true" if opt else "false",
        }

    def _pos_values(self, p: int, duplicate: bool) -> dict[str, str | None]:
        r, P = self.r, self.people
        first = self._name_variant(P.first[p], 0.22, 0.06)
        if r.random() < 0.04:
            first = first[0] + "."
        last = typo(r, P.last[p]) if r.random() < 0.05 else P.last[p]
        x = r.random()
        if x < 0.66:
            full = f"{first} {last}"
        elif x < 0.88:
            full = f"{last}, {first}"
        elif x < 0.94:
            full = f"{last.upper()}, {first}"
        else:
            full = f"{first} {last}".upper()
        y = r.random()
        if P.family_email[p] and y < 0.6:
            email = P.family_email[p]
        elif y < 0.50:
            email = P.email[p]
        elif y < 0.62:
            email = P.alt_email[p]
        elif y < 0.66:
            local, dom = P.email[p].split("@")
            email = f"{local}@{N.EMAIL_TYPOS[dom]}" if dom in N.EMAIL_TYPOS else f"{typo(r, local)}@{dom}"
        elif y < 0.70:
            email = P.email[p].upper() if r.random() < 0.5 else " " + P.email[p]
        else:
            email = None
        if duplicate and email == P.email[p] and r.random() < 0.5:
            email = None
        country = P.country[p]
        z = r.random()
        if z < 0.18:
            phone = None
        elif P.landline[p] and z < 0.6:
            phone = phone_text(r, country, P.landline[p])
        else:
            phone = phone_text(r, country, P.mobile[p])
        birth = None
        if r.random() >= 0.45:
            d = fmt.EPOCH + dt.timedelta(days=P.dob[p])
            if d.day <= 12 and d.day != d.month and r.random() < 0.02:
                birth = f"{d.month:02d}/{d.day:02d}/{d.year}"  # day and month swapped at the till
            else:
                birth = d.strftime("%d/%m/%Y")
        if r.random() < 0.03:
            street = town = post_code = None
        else:
            street, town, post_code = P.address[p] if r.random() >= 0.12 else _address(r, country)
            street = _street_variant(r, street, 0.4, 0.1)
            town = _town_variant(r, town, 0.12)
            post_code = _postcode_variant(r, post_code, 0.25)
        opt = (P.opt_propensity[p] < 0.5) != (r.random() < 0.1)
        card = f"6335{_ri(r, 0, 10 ** 9 - 1):09d}"
        while card in self.taken_cards:
            card = f"6335{_ri(r, 0, 10 ** 9 - 1):09d}"
        self.taken_cards.add(card)
        return {
            "loyalty_card": card, "full_name": full, "email": email, "phone": phone, "birth_date": birth,
            "street": street, "town": town, "post_code": post_code, "country": _country_text(r, country, "pos"),
            "opt_in": "Y" if opt else "N",
        }

    def _time_of_day(self, hours_cum: list[float]) -> int:
        h = bisect.bisect(hours_cum, self.r.random())
        return min(h, 23) * 3600 + _rr(self.r, 3600)

    def build_accounts(self, system: str, np_rng: np.random.Generator) -> Accounts:
        """The online accounts or the POS memberships of the persons (including within-system duplicates)."""
        r, P = self.r, self.people
        dup_share = ONLINE_DUPLICATE_SHARE if system == "online" else POS_DUPLICATE_SHARE
        hours = np.cumsum(ONLINE_HOURS if system == "online" else STORE_HOURS).tolist()
        has = P.has_online if system == "online" else P.has_pos
        has_other = P.has_pos if system == "online" else P.has_online
        entries: list[tuple[int, int, bool]] = []  # (created epoch seconds, person, duplicate)
        for p in np.flatnonzero(has):
            day = int(P.signup_day[p])
            # A person with both systems joins the second one later (often before the generated window).
            other_first = bool(has_other[p]) and bool(P.online_first[p]) != (system == "online")
            if other_first:  # joins the second system later, within the generated window at the latest
                day += _ri(r, 0, min(700, self.days - 1 - day))
            if day >= self.days:
                continue
            entries.append((self.start_s + day * 86400 + self._time_of_day(hours), int(p), False))
            if r.random() < dup_share:
                dday = day + (_ri(r, 30, max(30, min(900, self.days - 1 - day))) if day < 0 else _ri(r, 1, self.days))
                if dday < self.days:
                    entries.append((self.start_s + dday * 86400 + self._time_of_day(hours), int(p), True))
        entries.sort()
        values: dict[str, list[str | None]] = {}
        persons, created = [], []
        for ts, p, dup in entries:
            vals = self._online_values(p, dup) if system == "online" else self._pos_values(p, dup)
            for k, v in vals.items():
                values.setdefault(k, []).append(v)
            persons.append(p)
            created.append(ts)
        n = len(entries)
        created_arr = np.array(created, dtype=np.int64)
        # A backlog record was last edited some time between its creation and the first generated day.
        span = np.maximum(self.start_s - created_arr, 0)
        edited = np_rng.random(n) < 0.3
        updated = np.where(edited & (span > 0), created_arr + (np_rng.random(n) * span).astype(np.int64), created_arr)
        ids = [str(200001 + i) for i in range(n)] if system == "online" else [f"M{1000001 + i}" for i in range(n)]
        person_arr = np.array(persons, dtype=np.int64)
        segment = P.segment[person_arr] if n else np.zeros(0, dtype=np.int64)
        weight = SEG_FREQUENCY[segment] * np_rng.lognormal(0.0, 0.5, n) if n else np.zeros(0)
        return Accounts(
            system=system, ids=ids, person=person_arr, created=created_arr, updated=updated,
            created_day=(created_arr - self.start_s) // 86400, values=values, segment=segment, weight=weight,
        )

    # -- changes during the window ---------------------------------------------------------------------------------
    def update(self, acc: Accounts, idx: int, ts: int) -> str:
        """Change one account record (a move, an opt-in change, a new email or phone) and return what changed."""
        r, P = self.r, self.people
        p = int(acc.person[idx])
        v = acc.values
        x = r.random()
        online = acc.system == "online"
        if x < 0.35:
            new = _address(r, P.country[p])
            P.address[p] = new
            line, town, pc = new
            if online:
                v["address_line1"][idx] = _street_variant(r, line, 0.15, 0.01)
                v["city"][idx] = _town_variant(r, town, 0.05)
                v["postcode"][idx] = _postcode_variant(r, pc, 0.15)
            else:
                v["street"][idx] = _street_variant(r, line, 0.4, 0.1)
                v["town"][idx] = _town_variant(r, town, 0.12)
                v["post_code"][idx] = _postcode_variant(r, pc, 0.25)
            what = "moved"
        elif x < 0.65:
            key = "marketing_opt_in" if online else "opt_in"
            on, off = ("true", "false") if online else ("Y", "N")
            v[key][idx] = off if v[key][idx] == on else on
            what = "opt_in_changed"
        elif x < 0.82:
            new_email = self._email(P.first[p], P.last[p], P.country[p], avoid_domain=P.email[p].split("@")[1])
            P.email[p] = new_email
            v["email"][idx] = new_email
            what = "email_changed"
        else:
            P.mobile[p] = _mobile(r, P.country[p])
            v["phone"][idx] = phone_text(r, P.country[p], P.mobile[p])
            what = "phone_changed"
        acc.updated[idx] = ts
        return what

    # -- truth -----------------------------------------------------------------------------------------------------
    def persons_table(self) -> pa.Table:
        """Ground truth of every person (their state at the end of the generated window)."""
        P = self.people
        return pa.table({
            "person_id": P.person_id,
            "first_name": P.first,
            "last_name": P.last,
            "gender": P.gender,
            "date_of_birth": [(fmt.EPOCH + dt.timedelta(days=d)).isoformat() for d in P.dob],
            "email": P.email,
            "phone_e164": [P.e164(p) for p in range(P.size)],
            "address_line1": [a[0] for a in P.address],
            "city": [a[1] for a in P.address],
            "postcode": [a[2] for a in P.address],
            "country": P.country,
            "segment": [SEGMENT_NAMES[s] for s in P.segment],
            "household_id": P.household,
            "signup_date": [(self.start + dt.timedelta(days=int(d))).isoformat() for d in P.signup_day],
        })
