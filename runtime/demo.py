"""The bundled demo municipality: a reproducible housing chain as import lines.

Why it exists: `make run` imports it so a fresh stack has something to show (waiting lists,
the inspectorate report, caseloads, takeovers), and tests and benchmarks use it as a scenario
builder: `generate(cases=N)` scales the whole municipality (applications, apartment stock,
course groups) with N, and the same seed always gives the same lines.

Size: the defaults (200 cases, 2022-01-03 to 2026-10-30, seed 2017) give 9,239 lines, about
70 % of them support visits (weekly for the first three months after move-in, then monthly,
plus a follow-up every three months, and Housing First's weekly coordinator
meetings); 90 apartments from four landlords; 29 denied applications (15 %); 150
move-ins after a median wait of eight weeks (33 decisions pass three months unexecuted);
exits 38 first-hand lease, 32 own housing, 14 withdrawn, 13 terminated, 12 moved away, 1
deceased; 61 cases (30 %) still open at the end date. The line count grows
linearly with `cases` (about 46 lines a case: 1,000 cases give about 46,700 lines).

How it is made: a small discrete-event simulation over one fictional Stockholm municipality.
Each application is a case that follows the path in DOMAIN.md (application, assessment,
decision, waiting, offer, landlord approval, move-in, training phase, takeover review, exit);
the apartment stock is a shared resource, so offers go only to vacant apartments, a landlord
refusal puts the apartment back in the pool, an exit from training vacates it (for reuse after
cleaning) and a first-hand lease takes it out of the stock. Events are processed in date order
and each step is emitted only if the case's stage allows it at that date, so every line is
accepted by the domain rules (tests/test_demo.py replays them through `HousingChain.run`).
A few clients move between apartments of the programme shortly before they leave, a few
vacated apartments are repaired in their cleaning weeks, and about one move-in in twelve is on
a time-limited lease (`lease_end`, a year) renewed before it ends; these draw from a generator
of their own and are placed so that every other line stays as it was (the move-in lines of
those leases gain the `lease_end` field).

Identity data is synthetic: about a third of the `apply` lines carry a made-up name and a
personal number whose serial part is 000, which Skatteverket never issues.
"""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from domain.calendar import add_months
from domain.personal_number import luhn_check_digit
from domain.policy import Policy

# --- the municipality -------------------------------------------------------------------

DISTRICTS: list[tuple[str, int]] = [
    ("Norrmalm", 14),
    ("Södermalm", 16),
    ("Kungsholmen", 10),
    ("Östermalm", 7),
    ("Vasastan", 9),
    ("Hägersten", 13),
    ("Spånga", 12),
    ("Farsta", 13),
    ("Skärholmen", 6),
]

TARGET_GROUPS: list[tuple[str, int]] = [
    ("substance_abuse", 22),
    ("psychiatric_disability", 14),
    ("co_morbidity", 13),
    ("families_with_children", 16),
    ("young_adults", 12),
    ("elderly", 5),
    ("newly_arrived", 7),
    ("exposed_to_violence", 6),
    ("functional_impairment", 4),
    ("other", 1),
]

# landlord name, apartment id prefix, share of the stock
LANDLORDS: list[tuple[str, str, int]] = [
    ("Stockholmshem", "SH", 35),
    ("Svenska Bostäder", "SB", 30),
    ("Familjebostäder", "FB", 22),
    ("Fastighets AB Granen", "GR", 13),
]
ROOMS: list[tuple[int, int]] = [(1, 52), (2, 30), (3, 13), (4, 5)]

CASEWORKERS = [
    "handlaggare.lind", "handlaggare.ek", "handlaggare.sandberg", "handlaggare.omar",
    "handlaggare.wiklund",
]
PILOTS = ["bolots.ahmed", "bolots.berg", "bolots.nystrom", "bolots.karlsson"]
HOUSING_FIRST_COORDINATORS = ["bostadforst.lindqvist", "bostadforst.haddad"]
STOCK_KEEPER = "bostadsenheten.falk"  # keeps the apartment stock (lägenhetsbanken)

DENIAL_REASONS = [
    "Behovet kan tillgodoses på annat sätt (egen ansökan i bostadskön, boendestöd)",
    "Sökanden har eget förstahandskontrakt; hänvisas till vräkningsförebyggande stöd",
    "Ej folkbokförd i kommunen; hänvisas till hemkommunen",
    "Uppfyller inte riktlinjernas kriterier för träningslägenhet",
    "Sökanden har inte medverkat i utredningen",
    "Behov av heldygnsvård; annan insats bedöms lämpligare",
]
LANDLORD_REFUSALS = [
    "Tidigare hyresskuld hos bolaget",
    "Störningar i tidigare hyresförhållande hos bolaget",
    "Ej godkänd vid referenstagning",
]
TAKEOVER_REFUSALS = [
    "Betalningsanmärkning vid kreditprövning",
    "Ofullständiga hyresreferenser under prövotiden",
    "Klagomål under prövotiden; ny prövning om sex månader",
]
COMPLAINTS = [
    "Störningsanmälan från grannar (hög musik nattetid)",
    "Anmodan om rättelse skickad efter upprepade störningar",
    "Klagomål på nedskräpning i trapphuset",
    "Misstänkt otillåten andrahandsuthyrning; kontrollerat vid hembesök",
    "Många besökare sent på kvällarna enligt grannar",
]

FIRST_NAMES = [
    "Anna", "Maria", "Sara", "Emma", "Lena", "Karin", "Fatima", "Amina", "Leila", "Nour",
    "Erik", "Johan", "Lars", "Mikael", "Anders", "Peter", "Ali", "Mohammed", "Ahmed", "Yusuf",
    "Jonas", "Linnea", "Elin", "Hanna", "Oskar", "Viktor", "Daniel", "Sofia", "Ida", "Hassan",
    "Zeynep", "Aleksander", "Tomas", "Birgitta", "Gunnar", "Ingrid", "Samir", "Dalia",
]
LAST_NAMES = [
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
    "Persson", "Svensson", "Gustafsson", "Pettersson", "Jonsson", "Lindberg", "Holm",
    "Ali", "Mohamed", "Hassan", "Yilmaz", "Nowak", "Korhonen", "Berg", "Lund", "Axelsson",
    "Sjöberg", "Hussein", "Abdi", "Strand", "Forsberg", "Bergström", "Öberg",
]

# --- programme and household choice -----------------------------------------------------

_PROGRAMME_WEIGHTS: dict[str, tuple[int, int, int]] = {
    # training_apartment, housing_first, municipal_contract
    "substance_abuse": (60, 35, 5),
    "psychiatric_disability": (55, 35, 10),
    "co_morbidity": (45, 50, 5),
    "families_with_children": (60, 0, 40),
    "young_adults": (85, 5, 10),
    "elderly": (40, 10, 50),
    "newly_arrived": (55, 0, 45),
    "exposed_to_violence": (65, 5, 30),
    "functional_impairment": (50, 10, 40),
    "other": (80, 0, 20),
}
_PROGRAMMES = ("training_apartment", "housing_first", "municipal_contract")

# how a tenancy is meant to end (a plan the simulation follows while the case allows it)
TENANCY_FATES: list[tuple[str, int]] = [
    ("takeover", 42), ("own_housing", 24), ("terminated", 11), ("moved_away", 8),
    ("withdrawn", 6), ("deceased", 1), ("stays", 8),
]

HOME_STAGES = ("training", "takeover_review", "takeover_approved")
# The individual plan's sub-goals (id, goal), as the seeds' plans word them.
SUB_GOALS = [
    ("rent", "pays the rent on time"),
    ("activity", "a daily activity: work, studies or a day centre"),
    ("health", "keeps in touch with healthcare and treatment"),
    ("queue", "stays registered in the housing queue"),
    ("economy", "a budget with the budget and debt adviser"),
]


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    return rng.choices([item for item, _ in weighted], [w for _, w in weighted])[0]


class _Deck:
    """Draws from a shuffled deck dealt by weight, without replacement, dealt anew when empty.

    So a mix (15 % denied, the training phase's outcomes) holds in every run of a few dozen
    cases instead of only on average over many seeds.
    """

    def __init__(self, rng: random.Random, weighted: list[tuple[Any, int]], size: int) -> None:
        self.rng, self.weighted, self.size = rng, weighted, size
        self.cards: list[Any] = []

    def draw(self) -> Any:
        if not self.cards:
            total = sum(w for _, w in self.weighted)
            self.cards = [
                item for item, w in self.weighted for _ in range(round(w * self.size / total))
            ]
            self.rng.shuffle(self.cards)
        return self.cards.pop()


def _weekday(day: date) -> date:
    """Office steps happen on weekdays: a Saturday or Sunday moves to the Monday."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@dataclass
class _Apartment:
    id: str
    landlord: str
    rooms: int
    status: str = "vacant"  # vacant, offered, occupied, taken_over, returned
    available_from: date = date.min
    case: str | None = None
    leaving: bool = False  # to be returned to the landlord; not offered again
    vacant_since: date = date.min  # vacant (and not offered) since
    busy_until: date = date.min  # its last repair line: no move into it before


@dataclass
class _Case:
    id: str
    client_id: str
    target_group: str
    adults: int
    children: int
    caseworker: str
    stage: str = "applied"
    programme: str | None = None
    decided_on: date | None = None
    apartment: str | None = None
    move_in: date | None = None
    pilot: str | None = None
    refused_by: set[str] = field(default_factory=set)
    sessions: set[int] = field(default_factory=set)
    arrears_open: bool = False
    complaints: int = 0
    insured_from: date = date.min
    in_queue: bool = True
    fate: str = ""
    identity: dict[str, str] = field(default_factory=dict)
    placement: str | None = None  # an open temporary placement while waiting
    interrupted: bool = False  # the support is interrupted (hospital, prison, treatment)
    owed: int = 0  # rent arrears not yet paid back (SEK)
    training_since: date | None = None  # in the training stage (not takeover review) since
    lease_end: date | None = None  # a time-limited lease's last day

    def rooms_needed(self) -> int:
        if self.children == 0:
            return 1 if self.adults == 1 else 2
        return min(4, 1 + (self.adults > 1) + math.ceil(self.children / 2))


class _Municipality:
    """The simulation: a calendar of pending events, the cases and the apartment stock."""

    def __init__(self, cases: int, seed: int, start: date, end: date) -> None:
        if end <= start:
            raise ValueError(f"end ({end}) must be after start ({start})")
        self.rng = random.Random(seed)
        self.n_cases = cases
        self.start, self.end = start, end
        self.policy = Policy()
        self.lines: list[tuple[date, int, dict[str, Any]]] = []
        self._calendar: list[tuple[date, int, Callable[..., None], tuple[Any, ...]]] = []
        self._counter = 0
        self.cases: dict[str, _Case] = {}
        self.apartments: dict[str, _Apartment] = {}
        self.waiting: list[str] = []  # case ids in decision order
        self._numbers: set[str] = set()  # the identity store refuses a number under two clients
        self.returners: list[tuple[date, _Case]] = []  # exits to permanent housing
        self.cohorts: list[date] = []
        self.cohort_size: list[int] = []
        self._year_counter: dict[int, int] = {}
        self._apartment_numbers: dict[str, list[int]] = {}
        self._extra_left = max(1, round(cases * 0.13))  # apartments procured for a long queue
        rng = self.rng
        self.denied = _Deck(rng, [(True, 15), (False, 85)], 20)
        self.leaves_queue = _Deck(rng, [(True, 18), (False, 82)], 50)
        self.queue_exit = _Deck(
            rng, [("own_housing", 45), ("withdrawn", 32), ("moved_away", 20), ("deceased", 3)], 100
        )
        self.fate = _Deck(rng, TENANCY_FATES, 100)
        # The case file's steps draw from their own generator, so the lines the demo had
        # before them (and the tests that count them) stay exactly as they were.
        self.file_rng = random.Random(f"case-file:{seed}")
        # The client's sex and birth year (the homelessness count) likewise: their own
        # generator, so every other line stays as it was. A client keeps them across cases.
        self.person_rng = random.Random(f"person:{seed}")
        self._persons: dict[str, tuple[str, int]] = {}
        # Moves between apartments, repairs and time-limited leases: their own generator too.
        # They are placed where they change no other line: a repair in an apartment's
        # cleaning weeks after an exit, a move shortly before an exit into an apartment that
        # would stand vacant until after it anyway (see `_move_before_exit`).
        self.gap_rng = random.Random(f"gaps:{seed}")
        # interruptions of support and Housing First's coordinator meetings: their own draws
        self.support_rng = random.Random(f"support:{seed}")
        self._born: dict[str, int] = {}  # the year in the generated personal number, if any

    # --- the calendar ---------------------------------------------------------------

    def at(self, day: date, action: Callable[..., None], *args: Any) -> None:
        """Schedule `action(day, *args)`; anything after the end date never happens."""
        if day > self.end:
            return
        self._counter += 1
        heapq.heappush(self._calendar, (day, self._counter, action, args))

    def emit(self, day: date, type_: str, actor: str, **fields: Any) -> None:
        line = {"type": type_, "on": day.isoformat(), "actor": actor, **fields}
        self.lines.append((day, len(self.lines), line))

    def run(self) -> list[dict[str, Any]]:
        self._plan_stock()
        self._plan_courses()
        self._plan_applications()
        day = _weekday(self.start)
        while day <= self.end:
            self.at(day, self._match)
            day = _weekday(day + timedelta(days=1))
        while self._calendar:
            day, _, action, args = heapq.heappop(self._calendar)
            action(day, *args)
        self.lines.sort(key=lambda item: (item[0], item[1]))
        return [line for _, _, line in self.lines]

    # --- the apartment stock --------------------------------------------------------

    def _plan_stock(self) -> None:
        rng = self.rng
        total = max(4, round(self.n_cases * 0.32))
        initial = max(2, round(total * 0.35))
        span = (self.end - self.start).days
        for _, prefix, _ in LANDLORDS:
            pool = range(1001, 1001 + max(8998, total * 3))
            self._apartment_numbers[prefix] = rng.sample(pool, k=min(len(pool), total * 2))
        month = add_months(self.start.replace(day=1), 3)
        while month <= self.end:
            self.at(_weekday(month), self._procure)
            month = add_months(month, 1)
        for i in range(total):
            if i < initial:
                day = self.start + timedelta(days=rng.randint(0, 40))
            else:
                day = self.start + timedelta(days=rng.randint(45, max(46, span - 90)))
            self.at(_weekday(day), self._register)

    def _procure(self, day: date) -> None:
        """Each month: a long queue makes the property office find an extra apartment."""
        queue = [self.cases[c] for c in self.waiting if self.cases[c].stage == "waiting"]
        wanted = min(3, self._extra_left, len(queue) - max(2, round(self.n_cases * 0.025)))
        for case in queue[:max(0, wanted)]:  # sized for those who have waited longest
            self._extra_left -= 1
            self.at(_weekday(day + timedelta(days=self.rng.randint(20, 60))), self._register,
                    case.rooms_needed())

    def _register(self, day: date, rooms: int | None = None) -> None:
        rng = self.rng
        landlord, prefix, _ = rng.choices(LANDLORDS, [w for *_, w in LANDLORDS])[0]
        number = self._apartment_numbers[prefix].pop()
        apartment = _Apartment(
            id=f"{prefix}-{number}", landlord=landlord, rooms=rooms or _pick(rng, ROOMS),
            available_from=day + timedelta(days=rng.randint(0, 14)),
        )
        apartment.vacant_since = day
        self.apartments[apartment.id] = apartment
        self.emit(day, "register_apartment", STOCK_KEEPER,
                  apartment=apartment.id, landlord=landlord, rooms=apartment.rooms,
                  accessible=self.file_rng.random() < 0.12,
                  landlord_type="private" if prefix == "GR" else "municipal_company")

    def _return(self, day: date, apartment_id: str) -> None:
        apartment = self.apartments[apartment_id]
        if apartment.status != "vacant":
            apartment.leaving = False
            return
        apartment.status = "returned"
        self.emit(day, "return_apartment", STOCK_KEEPER, apartment=apartment_id)

    def _fits(self, case: _Case, apartment: _Apartment) -> bool:
        need = case.rooms_needed()
        return (
            need <= apartment.rooms <= need + 1
            and apartment.landlord not in case.refused_by
        )

    def _match(self, day: date) -> None:
        """Each weekday: offer every apartment ready for letting to the longest waiting fit."""
        free = [
            a for a in self.apartments.values()
            if a.status == "vacant" and not a.leaving and a.available_from <= day
        ]
        if not free or not self.waiting:
            return
        free.sort(key=lambda a: (a.rooms, a.available_from))
        for case_id in list(self.waiting):
            case = self.cases[case_id]
            if case.stage != "waiting":
                continue
            apartment = next((a for a in free if self._fits(case, a)), None)
            if apartment is None:
                continue
            free.remove(apartment)
            self.waiting.remove(case_id)
            self._offer(day, case, apartment)
            if not free:
                return

    # --- the housing course ---------------------------------------------------------

    def _plan_courses(self) -> None:
        """A course group starts every five weeks: four weekly sessions, about six people."""
        day = _weekday(self.start + timedelta(days=21))
        while day <= self.end:
            tuesday = day + timedelta(days=(1 - day.weekday()) % 7)
            self.cohorts.append(tuesday)
            self.cohort_size.append(0)
            day = tuesday + timedelta(days=35)

    def _enrol(self, day: date, case: _Case) -> None:
        size = max(6, round(self.n_cases / 30))
        for i, starts in enumerate(self.cohorts):
            if starts >= day + timedelta(days=3) and self.cohort_size[i] < size:
                self.cohort_size[i] += 1
                for session in range(1, 5):
                    self.at(starts + timedelta(days=7 * (session - 1)), self._session,
                            case, session, i)
                return

    def _session(self, day: date, case: _Case, session: int, cohort: int) -> None:
        if case.stage == "closed" or session in case.sessions:
            return
        if self.rng.random() < 0.1:  # missed this one
            return
        case.sessions.add(session)
        self.emit(day, "course_session", PILOTS[cohort % len(PILOTS)], case=case.id,
                  session=session)

    # --- application, assessment, decision ------------------------------------------

    def _plan_applications(self) -> None:
        rng = self.rng
        span = (self.end - self.start).days - 3
        days = sorted(rng.randint(0, span) for _ in range(self.n_cases))
        for offset in days:
            self.at(_weekday(self.start + timedelta(days=offset)), self._apply)

    def _new_client(self, day: date, target_group: str) -> tuple[str, dict[str, str]]:
        rng = self.rng
        client_id = f"kl-{rng.getrandbits(32):08x}"
        if rng.random() >= 1 / 3:
            return client_id, {}
        age = {
            "young_adults": (18, 25), "elderly": (65, 86),
        }.get(target_group, (26, 64))
        born = day - timedelta(days=rng.randint(age[0] * 365 + 1, age[1] * 365))
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        # generated: a valid date and check digit (the identity store refuses any other), and
        # drawn again on the rare repeat, which the identity store would refuse too
        while True:
            nine = f"{born:%y%m%d}{rng.randint(980, 999)}"
            number = f"{born:%Y%m%d}-{nine[6:]}{luhn_check_digit(nine)}"
            if number not in self._numbers:
                break
            born -= timedelta(days=1)
        self._numbers.add(number)
        self._born[client_id] = born.year
        return client_id, {"name": name, "personal_number": number}

    def _person(self, day: date, client_id: str, target_group: str) -> tuple[str, int]:
        """Sex and birth year, as a caseworker records them (never read off the personal
        number by the system; the demo keeps its own made-up number consistent)."""
        if client_id not in self._persons:
            rng = self.person_rng
            women = 85 if target_group == "exposed_to_violence" else 33
            sex = _pick(rng, [("female", women), ("male", 97 - women), ("other", 1),
                              ("unknown", 2)])
            low, high = {"young_adults": (18, 25), "elderly": (65, 86)}.get(target_group, (26, 64))
            year = self._born.get(client_id) or day.year - rng.randint(low, high)
            self._persons[client_id] = (sex, year)
        return self._persons[client_id]

    def _apply(self, day: date) -> None:
        rng = self.rng
        returner = None
        recent = [c for left, c in self.returners if (day - left).days <= 540]
        if recent and rng.random() < 0.04:
            returner = rng.choice(recent)
            self.returners = [(d, c) for d, c in self.returners if c is not returner]
        if returner is not None:
            target_group, adults, children = (
                returner.target_group, returner.adults, returner.children
            )
            client_id, identity = returner.client_id, returner.identity
            situation = "at_risk"
        else:
            target_group = _pick(rng, TARGET_GROUPS)
            adults, children = self._household(target_group)
            client_id, identity = self._new_client(day, target_group)
            situation = self._situation(target_group)
        n = self._year_counter.get(day.year, 0) + 1
        self._year_counter[day.year] = n
        case = _Case(
            id=f"BO-{day.year}-{n:04d}", client_id=client_id, target_group=target_group,
            adults=adults, children=children, caseworker=rng.choice(CASEWORKERS),
            identity=identity,
        )
        self.cases[case.id] = case
        client: dict[str, Any] = {
            "id": client_id, "target_group": target_group, "district": _pick(rng, DISTRICTS),
            "household": {"adults": adults, "children": children},
            "housing_situation": situation, **identity,
        }
        client["sex"], client["birth_year"] = self._person(day, client_id, target_group)
        self.emit(day, "apply", case.caseworker, case=case.id, client=client,
                  referral=self._referral(target_group))
        self.at(_weekday(day + timedelta(days=rng.randint(0, 10))), self._assess, case)

    def _household(self, target_group: str) -> tuple[int, int]:
        rng = self.rng
        if target_group == "families_with_children":
            return (1 if rng.random() < 0.6 else 2), rng.choice([1, 1, 2, 2, 3, 4])
        if target_group == "exposed_to_violence":
            return 1, rng.choice([0, 0, 1, 2, 3])
        if target_group == "newly_arrived":
            return rng.choice([1, 1, 2]), rng.choice([0, 0, 1, 2, 3])
        if target_group == "elderly":
            return (2 if rng.random() < 0.15 else 1), 0
        return (2 if rng.random() < 0.05 else 1), 0

    def _situation(self, target_group: str) -> str:
        if target_group in ("families_with_children", "elderly", "functional_impairment"):
            weights = [35, 35, 30]
        else:
            weights = [65, 17, 18]
        return self.rng.choices(["without_housing", "at_risk", "unsuitable"], weights)[0]

    def _referral(self, target_group: str) -> str:
        if target_group in ("psychiatric_disability", "co_morbidity", "functional_impairment"):
            weights = [20, 45, 28, 7]
        else:
            weights = [38, 18, 32, 12]
        return self.rng.choices(["self", "healthcare", "other_unit", "other"], weights)[0]

    def _assess(self, day: date, case: _Case) -> None:
        rng = self.rng
        case.stage = "assessment"
        self.emit(day, "start_assessment", case.caseworker, case=case.id)
        if rng.random() < 0.03:
            later = day + timedelta(days=rng.randint(5, 30))
            self.at(later, self._exit, case, rng.choice(["withdrawn", "moved_away"]))
            return
        self.at(_weekday(day + timedelta(days=rng.randint(7, 42))), self._decide, case)

    def _decide(self, day: date, case: _Case) -> None:
        rng = self.rng
        if case.stage != "assessment":
            return
        case.decided_on = day
        if self.denied.draw():
            case.stage = "closed"
            self.emit(day, "decide", case.caseworker, case=case.id, outcome="denied",
                      reason=rng.choice(DENIAL_REASONS))
            return
        case.programme = rng.choices(_PROGRAMMES, _PROGRAMME_WEIGHTS[case.target_group])[0]
        case.stage = "waiting"
        self.emit(day, "decide", case.caseworker, case=case.id, outcome="granted",
                  programme=case.programme)
        self.waiting.append(case.id)
        if self.file_rng.random() < 0.25:  # some wait in temporary accommodation
            self.at(day + timedelta(days=self.file_rng.randint(1, 10)), self._place, case)
        if rng.random() < 0.9:
            self._enrol(day, case)
        if self.leaves_queue.draw():  # finds a home or gives up before an offer comes
            self.at(day + timedelta(days=rng.randint(30, 420)), self._leave_queue, case,
                    self.queue_exit.draw())

    def _place(self, day: date, case: _Case) -> None:
        if case.stage not in ("waiting", "offered", "approved") or case.placement:
            return
        kind, cost = self.file_rng.choice([("hotel", "1150"), ("hotel", "980"), ("shelter", "350"),
                                           ("camping_cabin", "600"), ("family", None)])
        case.placement = f"{case.id}-tp1"
        self.emit(day, "temporary_placement", case.caseworker, case=case.id,
                  placement=case.placement, kind=kind, cost_per_night=cost)

    def _end_placement(self, day: date, case: _Case) -> None:
        if case.placement:
            self.emit(day, "placement_ended", case.caseworker, case=case.id,
                      placement=case.placement)
            case.placement = None

    def _leave_queue(self, day: date, case: _Case, destination: str) -> None:
        if case.stage == "waiting":
            self._exit(day, case, destination)

    # --- offer, landlord approval, move-in ------------------------------------------

    def _offer(self, day: date, case: _Case, apartment: _Apartment) -> None:
        rng = self.rng
        case.stage, case.apartment = "offered", apartment.id
        apartment.status, apartment.case = "offered", case.id
        self.emit(day, "offer", case.caseworker, case=case.id, apartment=apartment.id)
        self.at(_weekday(day + timedelta(days=rng.randint(3, 15))), self._landlord_decides,
                case)

    def _landlord_decides(self, day: date, case: _Case) -> None:
        rng = self.rng
        if case.stage != "offered" or case.apartment is None:
            return
        apartment = self.apartments[case.apartment]
        if rng.random() < 0.08:
            self.emit(day, "landlord_decision", apartment.landlord, case=case.id,
                      approved=False, reason=rng.choice(LANDLORD_REFUSALS))
            case.refused_by.add(apartment.landlord)
            case.stage, case.apartment = "waiting", None
            apartment.status, apartment.case, apartment.available_from = "vacant", None, day
            apartment.vacant_since = day
            self.waiting.append(case.id)
            self.waiting.sort(key=lambda c: self.cases[c].decided_on or date.min)
            return
        case.stage = "approved"
        self.emit(day, "landlord_decision", apartment.landlord, case=case.id, approved=True)
        move_in = day + timedelta(days=rng.randint(5, 25))
        if rng.random() < 0.4:  # contracts often start on the first of a month
            move_in = add_months(move_in.replace(day=1), 1)
        self.at(move_in, self._move_in, case)

    def _move_in(self, day: date, case: _Case) -> None:
        rng = self.rng
        if case.stage != "approved" or case.apartment is None:
            return
        apartment = self.apartments[case.apartment]
        case.stage, case.move_in = "training", day
        case.training_since = day
        apartment.status = "occupied"
        case.pilot = (
            rng.choice(HOUSING_FIRST_COORDINATORS) if case.programme == "housing_first"
            else rng.choice(PILOTS)
        )
        case.insured_from = day + timedelta(days=rng.choice([0, 0, 0, 14, 30, 60]))
        case.in_queue = rng.random() < 0.85
        self._end_placement(day, case)
        if self.file_rng.random() < 0.85:  # most pilots are assigned before the move-in
            self.emit(day, "assign", case.caseworker, case=case.id, role="housing_pilot",
                      to=case.pilot)
        lease: dict[str, str] = {}
        if self.gap_rng.random() < 0.08:  # a time-limited lease (a year), renewed before its end
            case.lease_end = add_months(day, 12) - timedelta(days=1)
            lease["lease_end"] = case.lease_end.isoformat()
            self.at(_weekday(case.lease_end - timedelta(days=self.gap_rng.randint(20, 50))),
                    self._renew_lease, case)
        self.emit(day, "move_in", case.caseworker, case=case.id, apartment=apartment.id, **lease)
        self._plan_tenancy(day, case)
        if self.file_rng.random() < 0.9:  # the individual plan, within a month or so
            self.at(_weekday(day + timedelta(days=self.file_rng.randint(7, 40))),
                    self._individual_plan, case)
        if self.file_rng.random() < 0.5:  # the four-level model: a level, lowered as it goes well
            self.at(_weekday(day + timedelta(days=self.file_rng.randint(3, 20))), self._level,
                    case, self.file_rng.choice([1, 1, 2]))
        if self.file_rng.random() < 0.06:  # a stay in hospital, prison or treatment
            self.at(day + timedelta(days=self.file_rng.randint(60, 500)), self._interrupt, case)
        elif self.support_rng.random() < 0.15:
            self.at(day + timedelta(days=self.support_rng.randint(30, 200)), self._interrupt, case)
        if case.programme == "housing_first":  # Järfälla: the coordinator meets every week
            self.at(day + timedelta(days=self.support_rng.randint(10, 12)),
                    self._coordinator_meeting, case)

    # --- the training phase ---------------------------------------------------------

    def _plan_tenancy(self, day: date, case: _Case) -> None:
        rng = self.rng
        self.at(day + timedelta(days=rng.randint(5, 8)), self._home_visit, case, 1)
        self.at(add_months(day, 3) + timedelta(days=rng.randint(-3, 5)), self._follow_up, case,
                1)
        if case.programme == "housing_first":
            self.at(add_months(day, 3) + timedelta(days=rng.randint(0, 10)), self._inspect,
                    case, 1)
        fate = case.fate = self.fate.draw()
        minimum = self.policy.takeover_minimum(case.programme or "")
        if fate == "takeover":
            refer = add_months(day, minimum) + timedelta(days=rng.randint(0, 60))
            self.at(_weekday(refer), self._refer, case)
        elif fate == "stays":
            leave = day + timedelta(days=rng.randint(600, 1100))
            self.at(leave, self._exit, case, "own_housing")
        elif fate == "terminated":
            leave = day + timedelta(days=rng.randint(120, 600))
            arrears = leave - timedelta(days=rng.randint(45, 100))
            if arrears > day + timedelta(days=30):
                self.at(arrears, self._arrears, case, rng.random() < 0.35)
            else:
                self.at(day + timedelta(days=rng.randint(30, 60)), self._complaint, case)
            self.at(_weekday(leave), self._exit, case, "terminated")
        else:
            low, high = {"own_housing": (120, 540), "deceased": (30, 900)}.get(fate, (60, 480))
            self.at(day + timedelta(days=rng.randint(low, high)), self._exit, case, fate)
        if fate != "terminated" and rng.random() < 0.22:
            self.at(day + timedelta(days=rng.randint(40, 480)), self._arrears, case, True)
        if rng.random() < (0.35 if fate == "terminated" else 0.08):
            for _ in range(rng.choice([1, 1, 2])):
                self.at(day + timedelta(days=rng.randint(20, 500)), self._complaint, case)

    def _individual_plan(self, day: date, case: _Case) -> None:
        rng = self.file_rng
        if case.stage not in HOME_STAGES:
            return
        chosen = rng.sample(SUB_GOALS, rng.randint(2, 3))
        follow_up = day + timedelta(days=rng.choice([60, 90, 90, 120]))
        sub_goals = [{"id": key, "goal": goal,
                      "responsible": case.pilot if key in ("rent", "queue") and case.pilot
                      else case.caseworker, "follow_up": follow_up.isoformat()}
                     for key, goal in chosen]
        self.emit(day, "plan", case.caseworker, case=case.id, goal="own housing",
                  sub_goals=sub_goals)
        self.at(_weekday(follow_up + timedelta(days=rng.randint(-5, 12))), self._plan_review,
                case, [key for key, _ in chosen], 1)

    def _level(self, day: date, case: _Case, level: int) -> None:
        if case.stage not in HOME_STAGES:
            return
        self.emit(day, "support_level", case.pilot or case.caseworker, case=case.id, level=level)
        if level < 4 and self.file_rng.random() < 0.6:
            self.at(_weekday(day + timedelta(days=self.file_rng.randint(120, 300))), self._level,
                    case, level + 1)

    def _coordinator_meeting(self, day: date, case: _Case) -> None:
        """Housing First (Järfälla): the coordinator meets the tenant every week, between the
        fortnightly home visits."""
        if case.stage not in HOME_STAGES or case.move_in is None:
            return
        self.emit(day, "record_visit", case.pilot or HOUSING_FIRST_COORDINATORS[0], case=case.id,
                  kind="coordinator_meeting")
        self.at(day + timedelta(days=self.support_rng.randint(6, 8)), self._coordinator_meeting,
                case)

    def _interrupt(self, day: date, case: _Case) -> None:
        rng = self.support_rng
        if case.stage not in HOME_STAGES or case.interrupted:
            return
        kind = rng.choice(["hospital", "hospital", "treatment", "treatment", "prison", "other"])
        case.interrupted = True
        self.emit(day, "support_interrupted", case.pilot or case.caseworker, case=case.id,
                  kind=kind)
        self.at(day + timedelta(days=rng.choice([20, 45, 70, 100, 150, 200])), self._resume, case)

    def _resume(self, day: date, case: _Case) -> None:
        if case.stage in HOME_STAGES and case.interrupted:
            self.emit(day, "support_resumed", case.pilot or case.caseworker, case=case.id)
        case.interrupted = False

    def _renew_lease(self, day: date, case: _Case) -> None:
        if case.stage not in HOME_STAGES or case.lease_end is None or day >= case.lease_end:
            return
        case.lease_end = add_months(case.lease_end, 12)
        self.emit(day, "renew_lease", case.caseworker, case=case.id,
                  lease_end=case.lease_end.isoformat())
        self.at(_weekday(case.lease_end - timedelta(days=self.gap_rng.randint(20, 50))),
                self._renew_lease, case)

    def _move_before_exit(self, day: date, case: _Case) -> str | None:
        """Now and then a client leaving from the training phase had moved to another
        apartment of the programme (omflyttning) a few weeks before: dated back, into an
        apartment that stood vacant, unoffered, since before the move and would only be ready
        for letting after the exit. So no other line changes: nothing else happened to either
        apartment in between, and the exit (its line unchanged) vacates the new apartment
        while the old one, vacant since the move, is let again when the simulation lets it."""
        rng = self.gap_rng
        if rng.random() >= 0.5 or case.stage != "training" or case.training_since is None:
            return None
        moved = _weekday(day - timedelta(days=rng.randint(7, 25)))
        if moved >= day or moved <= case.training_since:
            return None
        candidates = sorted(
            a.id for a in self.apartments.values()
            if a.status == "vacant" and not a.leaving and a.id != case.apartment
            and a.vacant_since < moved and a.busy_until < moved and a.available_from > day)
        if not candidates:
            return None
        target = rng.choice(candidates)
        self.emit(moved, "move_apartment", case.caseworker, case=case.id, apartment=target)
        return target

    def _repair_after_exit(self, day: date, apartment: _Apartment) -> None:
        """Now and then a vacated apartment is repaired in its cleaning weeks, before it is
        ready for letting again (so no offer changes)."""
        rng = self.gap_rng
        start = _weekday(day + timedelta(days=1))
        if rng.random() >= 0.2 or apartment.leaving or start + timedelta(days=2) >= \
                apartment.available_from:
            return
        done = start + timedelta(days=rng.randint(1, (apartment.available_from - start).days - 1))
        if done > self.end:
            return
        apartment.busy_until = done
        self.emit(start, "apartment_to_repair", apartment.landlord, apartment=apartment.id)
        self.emit(done, "apartment_repaired", apartment.landlord, apartment=apartment.id)

    def _plan_review(self, day: date, case: _Case, open_goals: list[str], n: int) -> None:
        rng = self.file_rng
        if case.stage not in HOME_STAGES or not open_goals:
            return
        reviews, still_open = [], []
        next_follow_up = day + timedelta(days=90)
        for key in open_goals:
            result = rng.choice(["met", "met", "partly", "not_met"])
            review: dict[str, Any] = {"sub_goal": key, "result": result,
                                      "note": {"met": "goal reached", "partly": "on the way",
                                               "not_met": "new approach agreed"}[result]}
            if result != "met" and n < 3:
                review["next_follow_up"] = next_follow_up.isoformat()
                still_open.append(key)
            reviews.append(review)
        self.emit(day, "plan_review", case.caseworker, case=case.id, reviews=reviews)
        if still_open:
            self.at(_weekday(next_follow_up + timedelta(days=rng.randint(-3, 10))),
                    self._plan_review, case, still_open, n + 1)

    def _home_visit(self, day: date, case: _Case, n: int) -> None:
        rng = self.rng
        if case.stage not in HOME_STAGES or case.move_in is None:
            return
        if rng.random() >= 0.04:  # now and then a visit is missed
            checklist = {
                "rent_paid": not case.arrears_open and rng.random() < 0.97,
                "home_insurance": day >= case.insured_from,
                "in_housing_queue": case.in_queue,
            }
            if not case.in_queue and rng.random() < 0.2:
                case.in_queue = True  # the pilot helps with the registration
            self.emit(day, "record_visit", case.pilot or PILOTS[0], case=case.id,
                      kind="home_visit", checklist=checklist)
        weekly_until = add_months(case.move_in, self.policy.weekly_visits_months)
        if day + timedelta(days=7) <= weekly_until:
            following = day + timedelta(days=rng.randint(6, 8))
        elif case.programme == "housing_first":  # the coordinator keeps meeting often
            following = day + timedelta(days=rng.randint(13, 15))
        else:
            following = add_months(day, 1) + timedelta(days=rng.randint(-4, 2))
            following = max(following, day + timedelta(days=14))
        self.at(following, self._home_visit, case, n + 1)

    def _follow_up(self, day: date, case: _Case, n: int) -> None:
        if case.stage not in HOME_STAGES or case.move_in is None:
            return
        self.emit(day, "record_visit", case.caseworker, case=case.id, kind="follow_up")
        due = add_months(case.move_in, 3 * (n + 1))
        self.at(_weekday(due + timedelta(days=self.rng.randint(-5, 3))), self._follow_up, case,
                n + 1)

    def _inspect(self, day: date, case: _Case, n: int) -> None:
        if case.stage not in HOME_STAGES or case.move_in is None or case.apartment is None:
            return
        landlord = self.apartments[case.apartment].landlord
        self.emit(day, "record_visit", landlord, case=case.id, kind="inspection")
        due = add_months(case.move_in, 3 * (n + 1))
        self.at(_weekday(due + timedelta(days=self.rng.randint(0, 10))), self._inspect, case,
                n + 1)

    def _arrears(self, day: date, case: _Case, with_plan: bool) -> None:
        rng = self.rng
        if case.stage not in HOME_STAGES:
            return
        rent = rng.randint(58, 98) * 100
        amount = rent * rng.choice([1, 1, 1, 2, 2, 3]) - rng.choice([0, 0, 0, 1250, 2400])
        case.arrears_open = True
        self.emit(day, "rent_arrears", case.caseworker, case=case.id, amount=max(amount, 500))
        case.owed += max(amount, 500)
        if with_plan:
            self.at(_weekday(day + timedelta(days=rng.randint(7, 35))), self._plan, case)

    def _plan(self, day: date, case: _Case) -> None:
        if case.stage not in HOME_STAGES or not case.arrears_open:
            return
        case.arrears_open = False
        rng = self.file_rng
        if rng.random() < 0.5 or case.owed < 1000:  # a plan without instalments, as before
            self.emit(day, "repayment_plan", case.caseworker, case=case.id)
            return
        n = rng.randint(3, 6)
        each = case.owed // n
        dues = [add_months(day, k) for k in range(1, n + 1)]
        self.emit(day, "repayment_plan", case.caseworker, case=case.id, instalments=[
            {"amount": str(each), "due": due.isoformat()} for due in dues])
        for due in dues:  # most are paid around the due date; some are missed
            if rng.random() < 0.8:
                self.at(due + timedelta(days=rng.randint(-5, 3)), self._pay, case, each)

    def _pay(self, day: date, case: _Case, amount: int) -> None:
        if case.stage not in HOME_STAGES or case.owed <= 0:
            return
        case.owed = max(0, case.owed - amount)
        self.emit(day, "rent_payment", case.caseworker, case=case.id, amount=str(amount))

    def _complaint(self, day: date, case: _Case) -> None:
        if case.stage not in HOME_STAGES:
            return
        case.complaints += 1
        self.emit(day, "complaint", case.caseworker, case=case.id,
                  note=self.rng.choice(COMPLAINTS))

    # --- takeover and exit ----------------------------------------------------------

    def _refer(self, day: date, case: _Case) -> None:
        rng = self.rng
        if case.stage != "training" or case.move_in is None:
            return
        earliest = add_months(case.move_in, self.policy.takeover_minimum(case.programme or ""))
        if day < earliest or case.arrears_open:
            self.at(_weekday(max(earliest, day + timedelta(days=30))), self._refer, case)
            return
        case.stage = "takeover_review"
        self.emit(day, "refer_takeover", case.caseworker, case=case.id)
        self.at(_weekday(day + timedelta(days=rng.randint(14, 60))), self._takeover_decides,
                case)

    def _takeover_decides(self, day: date, case: _Case) -> None:
        rng = self.rng
        if case.stage != "takeover_review" or case.apartment is None:
            return
        landlord = self.apartments[case.apartment].landlord
        approve = 0.6 if case.complaints else 0.88
        if rng.random() < approve:
            case.stage = "takeover_approved"
            self.emit(day, "takeover_decision", landlord, case=case.id, approved=True)
            leave = add_months(day.replace(day=1), 1 + (rng.random() < 0.3))
            self.at(leave, self._exit, case, "first_hand_lease")
            return
        case.stage = "training"
        case.training_since = day
        self.emit(day, "takeover_decision", landlord, case=case.id, approved=False,
                  reason=rng.choice(TAKEOVER_REFUSALS))
        if rng.random() < 0.5:
            self.at(_weekday(add_months(day, 6)), self._refer, case)
        else:
            self.at(day + timedelta(days=rng.randint(60, 400)), self._exit, case, "own_housing")

    def _exit(self, day: date, case: _Case, destination: str) -> None:
        rng = self.rng
        if case.stage == "closed":
            return
        if destination == "first_hand_lease" and case.stage != "takeover_approved":
            return
        if destination == "terminated" and case.stage not in HOME_STAGES:
            return
        if case.stage in ("offered", "approved"):
            return  # an apartment is on its way; the client stays
        if case.stage == "takeover_approved" and destination != "first_hand_lease":
            return  # the lease is being signed
        actor = case.caseworker
        if case.stage == "waiting" and case.id in self.waiting:
            self.waiting.remove(case.id)
        moved_to = None
        if case.stage in HOME_STAGES and case.apartment is not None:
            apartment = self.apartments[case.apartment]
            apartment.case = None
            if destination == "first_hand_lease":
                apartment.status = "taken_over"
            else:
                moved_to = self._move_before_exit(day, case)
                apartment.status = "vacant"
                apartment.vacant_since = day
                apartment.available_from = day + timedelta(days=rng.randint(7, 35))
                if rng.random() < 0.06:  # the landlord takes it back (renovation, sale)
                    apartment.leaving = True
                    self.at(_weekday(day + timedelta(days=rng.randint(3, 20))), self._return,
                            apartment.id)
                if moved_to is not None:  # the exit vacates the apartment moved to
                    self.apartments[moved_to].vacant_since = day
                else:
                    self._repair_after_exit(day, apartment)
        self._end_placement(day, case)
        case.stage = "closed"
        self.emit(day, "exit", actor, case=case.id, destination=destination)
        if destination in ("own_housing", "first_hand_lease"):
            self.returners.append((day, case))


def generate(
    cases: int = 200,
    seed: int = 2017,
    start: date = date(2022, 1, 3),
    end: date = date(2026, 10, 30),
) -> list[dict[str, Any]]:
    """The demo municipality's import lines, in effective-date order, without ids.

    Lines with the same date keep the order the simulation produced them in, which is the
    order the domain needs (an application before the assessment started the same day).
    """
    if cases < 1:
        raise ValueError("cases must be at least 1")
    return _Municipality(cases, seed, start, end).run()


def write(path: Path, **kwargs: Any) -> int:
    """Write `generate(**kwargs)` as JSON Lines (UTF-8); returns the number of lines."""
    lines = generate(**kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
    return len(lines)
