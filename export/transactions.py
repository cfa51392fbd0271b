"""Deterministic synthetic credit-card transactions in TabFormer's raw schema.

IBM's TabFormer card-transaction CSV (24M rows) is the data the fraud models of
this project are shaped for; tests, benchmarks and CI use this seeded stand-in so
that nothing has to be downloaded. :func:`generate_transactions` returns a frame
with the raw columns and value formats of that CSV read with ``dtype=str`` for
the text columns: ``"$134.09"`` / ``"$-77.00"`` amounts, ``"HH:MM"`` times,
``"ONLINE"`` as merchant city with empty state and zip for online purchases, a
country in ``Merchant State`` for foreign ones, ``Errors?`` as comma-terminated
lists. One tidy-up: ``Zip`` is five digits (``"02108"``), where the CSV has
pandas float artefacts (``"91750.0"``, ``"2108.0"``); missing values are ``""``.

Normal behaviour is per user: a home city, a Zipf-weighted pool of regular
merchants there, a typical hour of day (a few users are night owls), a user
spending level on top of a lognormal amount per MCC, occasional online
purchases, trips to another city (one trip city per card and month), rare
foreign purchases, ~1.5% refunds, ~1.5% benign errors of which about a quarter
are retried successfully minutes later, and chip use that grows from October 2015.

Fraud comes in four episode kinds, chosen so that a single-row model (the
XGBoost/FIL model) and a sequence model over a card's history each have
something of their own to learn, and neither separates fraud perfectly:

* **card testing**: 3-8 online charges under $5 within minutes, then a
  $500-3000 electronics or jewellery purchase. Each tiny charge on its own
  looks like a normal digital-goods purchase (those are common); only the
  burst on one card gives it away, so this is the sequence model's pattern.
  The large purchase is partly visible from one row (MCC, amount).
* **far-away merchant**: 1-3 purchases at an unusually high amount in a city
  of another US region or abroad, mostly by magnetic stripe (counterfeit
  cards cannot clone a chip). "Far away" is relative to the user's home, which
  one row does not show; benign trips keep location alone from being enough.
* **unusual hour and MCC**: 1-2 gambling or money-transfer charges between
  1 and 4 am on a card whose user never pays for either. Hour and MCC are in
  the row, but gamblers and night owls exist, so "never for this user" needs
  the history.
* **error-laden retries**: 2-5 declined attempts (bad CVV, PIN, expiry, card
  number, insufficient balance) at one merchant within minutes, then a
  success, all labelled fraud. Error rows are visible from one row but benign
  errors exist; the final successful row is only suspicious after the errors.

The whole frame depends only on ``(n_rows, seed, fraud_rate)``: all
randomness comes from one ``numpy.random.Generator`` seeded with ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tritonmm.server.models.fraud_preprocess.features import RAW_COLUMNS

LABEL_COLUMN = "Is Fraud?"

_EPOCH = np.datetime64("2015-01-01", "D")
_N_DAYS = int((np.datetime64("2020-02-29", "D") - _EPOCH).astype(np.int64)) + 1
_CHIP_DAY = int((np.datetime64("2015-10-01", "D") - _EPOCH).astype(np.int64))
_MINUTES_PER_DAY = 1440

# (city, state, zip of its centre); non-ASCII names keep downstream code UTF-8 clean.
_CITIES: tuple[tuple[str, str, int], ...] = (
    ("La Verne", "CA", 91750), ("Monterey Park", "CA", 91754), ("Los Angeles", "CA", 90012),
    ("San Diego", "CA", 92101), ("San Francisco", "CA", 94103), ("San José", "CA", 95112),
    ("Sacramento", "CA", 95814), ("Fresno", "CA", 93721), ("Oakland", "CA", 94607),
    ("Vista", "CA", 92084), ("Anaheim", "CA", 92805), ("New York", "NY", 10001),
    ("Brooklyn", "NY", 11201), ("Buffalo", "NY", 14202), ("Rochester", "NY", 14604),
    ("Albany", "NY", 12207), ("Yonkers", "NY", 10701), ("Houston", "TX", 77002),
    ("Dallas", "TX", 75201), ("Austin", "TX", 78701), ("San Antonio", "TX", 78205),
    ("El Paso", "TX", 79901), ("Fort Worth", "TX", 76102), ("Miami", "FL", 33130),
    ("Orlando", "FL", 32801), ("Tampa", "FL", 33602), ("Jacksonville", "FL", 32202),
    ("Tallahassee", "FL", 32301), ("Chicago", "IL", 60601), ("Springfield", "IL", 62701),
    ("Naperville", "IL", 60540), ("Peoria", "IL", 61602), ("Philadelphia", "PA", 19103),
    ("Pittsburgh", "PA", 15222), ("Allentown", "PA", 18101), ("Erie", "PA", 16501),
    ("Columbus", "OH", 43215), ("Cleveland", "OH", 44113), ("Cincinnati", "OH", 45202),
    ("Toledo", "OH", 43604), ("Akron", "OH", 44308), ("Detroit", "MI", 48226),
    ("Grand Rapids", "MI", 49503), ("Lansing", "MI", 48933), ("Ann Arbor", "MI", 48104),
    ("Atlanta", "GA", 30303), ("Savannah", "GA", 31401), ("Augusta", "GA", 30901),
    ("Charlotte", "NC", 28202), ("Raleigh", "NC", 27601), ("Durham", "NC", 27701),
    ("Greensboro", "NC", 27401), ("Seattle", "WA", 98101), ("Spokane", "WA", 99201),
    ("Tacoma", "WA", 98402), ("Phoenix", "AZ", 85004), ("Tucson", "AZ", 85701),
    ("Mesa", "AZ", 85201), ("Boston", "MA", 2108), ("Worcester", "MA", 1608),
    ("Cambridge", "MA", 2139), ("Denver", "CO", 80202), ("Colorado Springs", "CO", 80903),
    ("Cañon City", "CO", 81212), ("Boulder", "CO", 80302), ("Albuquerque", "NM", 87102),
    ("Santa Fe", "NM", 87501), ("Española", "NM", 87532), ("Newark", "NJ", 7102),
    ("Jersey City", "NJ", 7302), ("Trenton", "NJ", 8608), ("Richmond", "VA", 23219),
    ("Virginia Beach", "VA", 23451), ("Norfolk", "VA", 23510), ("Nashville", "TN", 37203),
    ("Memphis", "TN", 38103), ("Knoxville", "TN", 37902), ("Minneapolis", "MN", 55401),
    ("Saint Paul", "MN", 55102), ("Duluth", "MN", 55802), ("Milwaukee", "WI", 53202),
    ("Madison", "WI", 53703), ("Kansas City", "MO", 64105), ("Saint Louis", "MO", 63101),
    ("Indianapolis", "IN", 46204), ("Fort Wayne", "IN", 46802), ("Portland", "OR", 97204),
    ("Eugene", "OR", 97401), ("Salem", "OR", 97301), ("Las Vegas", "NV", 89101),
    ("Reno", "NV", 89501), ("Salt Lake City", "UT", 84101), ("Provo", "UT", 84601),
    ("New Orleans", "LA", 70112), ("Baton Rouge", "LA", 70801), ("Louisville", "KY", 40202),
    ("Lexington", "KY", 40507), ("Oklahoma City", "OK", 73102), ("Tulsa", "OK", 74103),
    ("Des Moines", "IA", 50309), ("Bettendorf", "IA", 52722), ("Beulah", "ND", 58523),
    ("Fargo", "ND", 58102), ("Birmingham", "AL", 35203), ("Montgomery", "AL", 36104),
    ("Charleston", "SC", 29401), ("Columbia", "SC", 29201), ("Baltimore", "MD", 21202),
    ("Annapolis", "MD", 21401), ("Hartford", "CT", 6103), ("New Haven", "CT", 6510),
    ("Omaha", "NE", 68102), ("Lincoln", "NE", 68508), ("Wichita", "KS", 67202),
    ("Little Rock", "AR", 72201), ("Jackson", "MS", 39201), ("Boise", "ID", 83702),
    ("Honolulu", "HI", 96813), ("Anchorage", "AK", 99501), ("Portland", "ME", 4101),
    ("Burlington", "VT", 5401), ("Manchester", "NH", 3101), ("Providence", "RI", 2903),
    ("Wilmington", "DE", 19801), ("Charleston", "WV", 25301), ("Billings", "MT", 59101),
    ("Cheyenne", "WY", 82001), ("Sioux Falls", "SD", 57104),
)
# US census regions: a merchant in another region than the user's home is "far away".
_REGIONS: tuple[str, ...] = (
    "ME NH VT MA RI CT NY NJ PA",
    "OH IN IL MI WI MN IA MO ND SD NE KS",
    "DE MD VA WV KY TN NC SC GA FL AL MS AR LA OK TX",
    "MT ID WY CO NM AZ UT NV CA OR WA AK HI",
)
_FOREIGN: tuple[tuple[str, str], ...] = (
    ("Rome", "Italy"), ("Milan", "Italy"), ("Paris", "France"), ("London", "United Kingdom"),
    ("Cancun", "Mexico"), ("Mexico City", "Mexico"), ("Toronto", "Canada"), ("Tokyo", "Japan"),
    ("Berlin", "Germany"), ("Zürich", "Switzerland"), ("São Paulo", "Brazil"),
)

# MCC, median amount ($), log-sd, share among local shops, share among online shops.
_MCC_TABLE: tuple[tuple[int, float, float, float, float], ...] = (
    (5411, 45.0, 0.7, 0.20, 0.00),  # grocery stores
    (5812, 32.0, 0.6, 0.15, 0.00),  # restaurants
    (5814, 11.0, 0.5, 0.14, 0.00),  # fast food
    (5541, 38.0, 0.45, 0.12, 0.00),  # service stations
    (5912, 22.0, 0.8, 0.07, 0.00),  # drug stores
    (5311, 55.0, 0.9, 0.06, 0.25),  # department stores
    (5300, 85.0, 0.7, 0.05, 0.05),  # wholesale clubs
    (5499, 18.0, 0.7, 0.08, 0.00),  # misc. food stores
    (4121, 16.0, 0.5, 0.04, 0.05),  # taxis and limousines
    (7011, 160.0, 0.6, 0.02, 0.08),  # hotels
    (5651, 50.0, 0.8, 0.03, 0.05),  # clothing
    (5732, 110.0, 1.0, 0.03, 0.15),  # electronics
    (5944, 140.0, 1.0, 0.01, 0.02),  # jewellery
    (4814, 60.0, 0.3, 0.00, 0.15),  # telecom
    (5815, 4.5, 0.7, 0.00, 0.25),  # digital goods
    (4829, 120.0, 0.9, 0.00, 0.00),  # money transfer (risky; only some users)
    (7995, 70.0, 1.0, 0.00, 0.00),  # gambling (risky; only some users)
)
_MCC_CODE = np.array([row[0] for row in _MCC_TABLE])
_MCC_MU = np.log([row[1] for row in _MCC_TABLE])
_MCC_SIGMA = np.array([row[2] for row in _MCC_TABLE])
_MCC_LOCAL_P = np.array([row[3] for row in _MCC_TABLE]) / sum(row[3] for row in _MCC_TABLE)
_MCC_ONLINE_P = np.array([row[4] for row in _MCC_TABLE]) / sum(row[4] for row in _MCC_TABLE)
_MCC_TEXT = np.array([str(c) for c in _MCC_CODE], dtype=object)
_MCC = {int(code): i for i, code in enumerate(_MCC_CODE)}
_RISKY_MCC = (_MCC[7995], _MCC[4829])
_TESTING_MCC = (_MCC[5815],)
_BIG_TICKET_MCC = (_MCC[5732], _MCC[5944])
_RETRY_MCC = (_MCC[5732], _MCC[5944], _MCC[5311], _MCC[4829])

_ERRORS = np.array(
    [
        "",
        "Insufficient Balance,",
        "Bad PIN,",
        "Technical Glitch,",
        "Bad Card Number,",
        "Bad Expiration,",
        "Bad CVV,",
        "Bad Zipcode,",
        "Bad PIN,Insufficient Balance,",
        "Bad PIN,Technical Glitch,",
        "Bad Card Number,Bad CVV,",
        "Bad CVV,Bad Expiration,",
    ],
    dtype=object,
)
_BENIGN_ERROR_P = np.array([0, 0.45, 0.25, 0.15, 0.04, 0.03, 0.03, 0.02, 0.015, 0.015, 0, 0])
_ONLINE_RETRY_ERRORS = np.flatnonzero(
    np.isin(
        _ERRORS,
        [
            "Insufficient Balance,",
            "Bad Card Number,",
            "Bad Expiration,",
            "Bad CVV,",
            "Bad Zipcode,",
            "Bad Card Number,Bad CVV,",
            "Bad CVV,Bad Expiration,",
        ],
    )
)
_IN_PERSON_RETRY_ERRORS = np.flatnonzero(
    np.isin(_ERRORS, ["Insufficient Balance,", "Bad PIN,", "Bad Card Number,", "Bad PIN,Insufficient Balance,"])
)

_USE_CHIP = np.array(["Swipe Transaction", "Chip Transaction", "Online Transaction"], dtype=object)
_HHMM = np.array([f"{m // 60:02d}:{m % 60:02d}" for m in range(_MINUTES_PER_DAY)], dtype=object)
_CENTS = np.array([f".{c:02d}" for c in range(100)], dtype=object)

# Merchants are numbered place by place (US cities, then foreign cities), each
# place holding _LOCAL_RANDOM shops of random MCC and then one shop per MCC;
# online shops come last: _ONLINE_RANDOM of random MCC, then one per MCC.
_LOCAL_RANDOM = 32
_ONLINE_RANDOM = 240
_PER_PLACE = _LOCAL_RANDOM + len(_MCC_CODE)
_N_PLACES = len(_CITIES) + len(_FOREIGN)
_ONLINE_BASE = _N_PLACES * _PER_PLACE

_STATE_REGION = {state: r for r, states in enumerate(_REGIONS) for state in states.split()}
_CITY_REGION = np.array([_STATE_REGION[state] for _, state, _ in _CITIES])
_FAR_CITIES = tuple(np.flatnonzero(_CITY_REGION != r) for r in range(len(_REGIONS)))

_POOL = 24  # regular merchants per user, Zipf-weighted
_POOL_P = np.arange(1, _POOL + 1) ** -1.1 / np.sum(np.arange(1, _POOL + 1) ** -1.1)
_ONLINE_SHARE = (2.0, 20.0)  # Beta parameters of a user's share of online purchases
_BROWSE_SHARE = 0.15  # home-town purchases outside the regular pool
_TRAVEL_SHARE = 0.02
_FOREIGN_SHARE = 0.002
_RISKY_USER_SHARE = 0.08
_RISKY_TXN_SHARE = 0.05  # of a risky user's purchases
_NIGHT_OWL_SHARE = 0.04
_ANY_HOUR_SHARE = 0.01
_REFUND_SHARE = 0.015
_ERROR_SHARE = 0.015
_RETRY_SHARE = 0.004  # benign declines retried successfully, as a share of all rows

_CARD_TESTING, _FAR_AWAY, _ODD_HOUR, _RETRIES = range(4)
_EPISODE_P = np.array([0.3, 0.3, 0.2, 0.2])
_EPISODE_ROWS = np.array([[4, 10], [1, 4], [1, 3], [3, 7]])  # [low, high) rows per kind
_ABROAD_SHARE = 0.3  # of far-away fraud places


def _shop(place: np.ndarray | int, slot: np.ndarray | int) -> np.ndarray | int:
    """Merchant number of shop ``slot`` in ``place``."""
    return place * _PER_PLACE + slot


def _shop_with(place: np.ndarray | int, mcc: np.ndarray | int) -> np.ndarray | int:
    """The one shop of MCC index ``mcc`` in ``place``."""
    return _shop(place, _LOCAL_RANDOM + mcc)


def _online_with(mcc: np.ndarray | int) -> np.ndarray | int:
    """The one online shop of MCC index ``mcc`` outside the random ones."""
    return _ONLINE_BASE + _ONLINE_RANDOM + mcc


@dataclass(frozen=True)
class _Merchants:
    """Per merchant number: the text of its columns, its MCC index, and whether it is online."""

    name: np.ndarray
    city: np.ndarray
    state: np.ndarray
    zip: np.ndarray
    mcc: np.ndarray
    online: np.ndarray

    @classmethod
    def build(cls, rng: np.random.Generator) -> _Merchants:
        all_mcc = np.arange(len(_MCC_CODE))
        local_mcc = np.concatenate(
            [
                rng.choice(all_mcc.size, size=(_N_PLACES, _LOCAL_RANDOM), p=_MCC_LOCAL_P),
                np.broadcast_to(all_mcc, (_N_PLACES, all_mcc.size)),
            ],
            axis=1,
        ).ravel()
        online_mcc = np.concatenate(
            [rng.choice(all_mcc.size, size=_ONLINE_RANDOM, p=_MCC_ONLINE_P), all_mcc]
        )
        place = np.repeat(np.arange(_N_PLACES), _PER_PLACE)
        city_zip = np.array([z for _, _, z in _CITIES])[np.minimum(place, len(_CITIES) - 1)]
        zips = np.char.zfill((city_zip + rng.integers(0, 15, size=place.size)).astype(str), 5)
        place_city = np.array([c for c, _, _ in _CITIES] + [c for c, _ in _FOREIGN], dtype=object)
        place_state = np.array([s for _, s, _ in _CITIES] + [s for _, s in _FOREIGN], dtype=object)
        online = np.full(online_mcc.size, "", dtype=object)
        bounds = np.iinfo(np.int64)
        names = rng.integers(bounds.min, bounds.max, size=place.size + online.size, dtype=np.int64)
        return cls(
            name=names.astype(str).astype(object),
            city=np.concatenate([place_city[place], np.full(online.size, "ONLINE", dtype=object)]),
            state=np.concatenate([place_state[place], online]),
            zip=np.concatenate([np.where(place < len(_CITIES), zips, "").astype(object), online]),
            mcc=np.concatenate([local_mcc, online_mcc]),
            online=np.arange(names.size) >= _ONLINE_BASE,
        )

    def online_of(self, mcc: tuple[int, ...]) -> np.ndarray:
        """All online shops whose MCC index is in ``mcc``."""
        return np.flatnonzero(self.online & np.isin(self.mcc, mcc))


@dataclass(frozen=True)
class _People:
    """Per user habits, and per card its user; card numbers order by (User, Card)."""

    home: np.ndarray  # city index
    hour_mean: np.ndarray
    hour_sd: np.ndarray
    spend: np.ndarray  # offset of log-amounts
    online_share: np.ndarray
    risky: np.ndarray  # pays for gambling or money transfers
    risky_shop: np.ndarray
    pool: np.ndarray  # (users, _POOL) regular merchants
    card_user: np.ndarray
    card_rank: np.ndarray
    card_start: np.ndarray  # first active day

    @classmethod
    def build(cls, rng: np.random.Generator, n_users: int) -> _People:
        home = rng.integers(0, len(_CITIES), size=n_users)
        night_owl = rng.random(n_users) < _NIGHT_OWL_SHARE
        risky_mcc = np.asarray(_RISKY_MCC)[rng.integers(0, 2, size=n_users)]
        n_cards = rng.choice([1, 2, 3], size=n_users, p=[0.5, 0.3, 0.2])
        card_user = np.repeat(np.arange(n_users), n_cards)
        card_rank = np.arange(card_user.size) - np.repeat(np.cumsum(n_cards) - n_cards, n_cards)
        return cls(
            home=home,
            hour_mean=np.where(
                night_owl, rng.uniform(21, 27, n_users), rng.uniform(9, 18, n_users)
            ),
            hour_sd=rng.uniform(1.5, 3.5, n_users),
            spend=rng.normal(0.0, 0.25, n_users),
            online_share=rng.beta(*_ONLINE_SHARE, size=n_users),
            risky=rng.random(n_users) < _RISKY_USER_SHARE,
            risky_shop=np.where(
                rng.random(n_users) < 0.5, _shop_with(home, risky_mcc), _online_with(risky_mcc)
            ),
            pool=_shop(home[:, None], rng.integers(0, _LOCAL_RANDOM, size=(n_users, _POOL))),
            card_user=card_user,
            card_rank=card_rank,
            card_start=np.where(
                card_rank == 0,
                rng.integers(0, 540, size=card_user.size),
                rng.integers(0, _N_DAYS - 240, size=card_user.size),
            ),
        )


def _lognormal_cents(
    rng: np.random.Generator, log_median: np.ndarray | float, sd: np.ndarray | float, size: int
) -> np.ndarray:
    """Lognormal amounts in cents, at least one cent."""
    dollars = np.exp(log_median + sd * rng.standard_normal(size))
    return np.maximum(np.rint(dollars * 100), 1).astype(np.int64)


def _normal_rows(
    rng: np.random.Generator, n: int, people: _People, shops: _Merchants
) -> dict[str, np.ndarray]:
    """``n`` legitimate transactions, grouped by card but not yet time-sorted."""
    weight = rng.lognormal(0.0, 0.5, people.card_user.size) * (_N_DAYS - people.card_start)
    card = np.repeat(np.arange(weight.size), rng.multinomial(n, weight / weight.sum()))
    user = people.card_user[card]
    start = people.card_start[card]
    day = start + (rng.random(n) * (_N_DAYS - start)).astype(np.int64)
    hour = np.rint(rng.normal(people.hour_mean[user], people.hour_sd[user])).astype(np.int64) % 24
    any_hour = rng.random(n) < _ANY_HOUR_SHARE
    hour[any_hour] = rng.integers(0, 24, size=int(any_hour.sum()))
    ts = (day * 24 + hour) * 60 + rng.integers(0, 60, size=n)

    # A regular shop by default; then, by one uniform draw: online, a trip (one
    # city per card and month), abroad, or the user's gambling/transfer habit.
    merchant = people.pool[user, rng.choice(_POOL, size=n, p=_POOL_P)]
    shop = rng.integers(0, _LOCAL_RANDOM, size=n)
    browse = rng.random(n) < _BROWSE_SHARE
    merchant[browse] = _shop(people.home[user[browse]], shop[browse])
    trip_city = rng.integers(0, len(_CITIES), size=(people.card_user.size, _N_DAYS // 30 + 1))
    foreign = len(_CITIES) + rng.integers(0, len(_FOREIGN), size=n)
    u = rng.random(n)
    online_end = people.online_share[user]
    travel_end = online_end + _TRAVEL_SHARE
    abroad_end = travel_end + _FOREIGN_SHARE
    risky_end = abroad_end + np.where(people.risky[user], _RISKY_TXN_SHARE, 0.0)
    merchant = np.select(
        [u < online_end, u < travel_end, u < abroad_end, u < risky_end],
        [
            _ONLINE_BASE + rng.integers(0, _ONLINE_RANDOM, size=n),
            _shop(trip_city[card, day // 30], shop),
            _shop(foreign, shop),
            people.risky_shop[user],
        ],
        merchant,
    )

    mcc = shops.mcc[merchant]
    cents = _lognormal_cents(rng, _MCC_MU[mcc] + people.spend[user], _MCC_SIGMA[mcc], n)
    cents[rng.random(n) < _REFUND_SHARE] *= -1
    err = np.zeros(n, dtype=np.int64)
    return {"card": card, "ts": ts, "merchant": merchant, "cents": cents, "err": err}


def _add_benign_errors(
    rng: np.random.Generator, rows: dict[str, np.ndarray], n_retry: int
) -> dict[str, np.ndarray]:
    """Decline ~1.5% of ``rows``; ``n_retry`` of them succeed on a retry 1-3 minutes later."""
    n = rows["ts"].size
    declined = rng.choice(n, size=min(n, max(n_retry, round(_ERROR_SHARE * n))), replace=False)
    rows["err"][declined] = rng.choice(_ERRORS.size, size=declined.size, p=_BENIGN_ERROR_P)
    retry = {key: value[declined[:n_retry]] for key, value in rows.items()}
    retry["ts"] = retry["ts"] + rng.integers(1, 4, size=n_retry)
    retry["err"] = np.zeros(n_retry, dtype=np.int64)
    return {key: np.concatenate([rows[key], retry[key]]) for key in rows}


def _episode_kinds(
    rng: np.random.Generator, n_fraud: int, can_odd_hour: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Kinds and row counts of fraud episodes whose rows add up to exactly ``n_fraud``."""
    p = _EPISODE_P.copy()
    if not can_odd_hour:
        p[_ODD_HOUR] = 0.0
    kinds = rng.choice(p.size, size=n_fraud, p=p / p.sum())
    sizes = rng.integers(_EPISODE_ROWS[kinds, 0], _EPISODE_ROWS[kinds, 1])
    keep = int(np.searchsorted(np.cumsum(sizes), n_fraud, side="right"))
    rest = n_fraud - int(sizes[:keep].sum())
    fill = [3] * (rest // 3) + [rest % 3] * (rest % 3 > 0)  # far-away episodes fill the gap
    return (
        np.concatenate([kinds[:keep], np.full(len(fill), _FAR_AWAY)]),
        np.concatenate([sizes[:keep], np.asarray(fill, dtype=np.int64)]),
    )


def _far_place(rng: np.random.Generator, home: int) -> int:
    """A city in another US census region than ``home``, or a foreign one."""
    if rng.random() < _ABROAD_SHARE:
        return len(_CITIES) + int(rng.integers(0, len(_FOREIGN)))
    return int(rng.choice(_FAR_CITIES[_CITY_REGION[home]]))


def _far_or_online_shop(
    rng: np.random.Generator, shops: _Merchants, mcc: int, online: bool, home: int
) -> int:
    """An online shop of MCC index ``mcc``, or the shop of that MCC in a far-away place."""
    if online:
        return int(rng.choice(shops.online_of((mcc,))))
    return int(_shop_with(_far_place(rng, home), mcc))


def _fraud_rows(
    rng: np.random.Generator,
    n_fraud: int,
    people: _People,
    shops: _Merchants,
    card_rows: np.ndarray,
    risky_history: np.ndarray,
) -> dict[str, np.ndarray]:
    """``n_fraud`` fraudulent transactions in episodes, mostly one episode per card."""
    # Weighted sampling without replacement: sort active cards by Exp(1) / rows.
    active = np.flatnonzero(card_rows > 0)
    order = active[np.argsort(rng.exponential(size=active.size) / card_rows[active])]
    clean = order[~risky_history[people.card_user[order]]]
    kinds, sizes = _episode_kinds(rng, n_fraud, can_odd_hour=clean.size > 0)
    odd = kinds == _ODD_HOUR
    cards = order[(np.cumsum(~odd) - 1) % max(order.size, 1)]
    cards[odd] = clean[(np.cumsum(odd)[odd] - 1) % max(clean.size, 1)]
    start = people.card_start[cards]
    day = start + ((0.25 + 0.75 * rng.random(kinds.size)) * (_N_DAYS - 1 - start)).astype(np.int64)
    first_ts = day * _MINUTES_PER_DAY + rng.integers(0, _MINUTES_PER_DAY, size=kinds.size)
    testing_shops = shops.online_of(_TESTING_MCC)

    keys = ("card", "ts", "merchant", "cents", "err")
    out: dict[str, list[np.ndarray]] = {key: [np.zeros(0, dtype=np.int64)] for key in keys}
    for kind, size, card, ts in zip(kinds, sizes, cards, first_ts):
        home = people.home[people.card_user[card]]
        err = np.zeros(size, dtype=np.int64)
        if kind == _CARD_TESTING:
            big = _far_or_online_shop(
                rng, shops, int(rng.choice(_BIG_TICKET_MCC)), rng.random() < 0.6, home
            )
            gaps = np.append(rng.integers(0, 4, size=size - 1), rng.integers(3, 90))
            merchant = np.append(np.full(size - 1, rng.choice(testing_shops)), big)
            cents = np.append(rng.integers(50, 500, size=size - 1), rng.integers(50_000, 300_001))
        elif kind == _FAR_AWAY:
            gaps = rng.integers(5, 240, size=size)
            merchant = _shop(_far_place(rng, home), rng.integers(0, _LOCAL_RANDOM, size=size))
            cents = np.clip(_lognormal_cents(rng, np.log(350.0), 0.8, size), 1_500, 500_000)
        elif kind == _ODD_HOUR:
            mcc = int(rng.choice(_RISKY_MCC))
            ts = ts - ts % _MINUTES_PER_DAY + rng.integers(60, 300)  # 01:00-04:59
            gaps = rng.integers(5, 60, size=size)
            shop = _online_with(mcc) if rng.random() < 0.5 else _shop_with(home, mcc)
            merchant = np.full(size, shop)
            cents = _lognormal_cents(rng, np.log(250.0), 0.7, size)
        else:  # _RETRIES
            online = rng.random() < 0.6
            shop = _far_or_online_shop(rng, shops, int(rng.choice(_RETRY_MCC)), online, home)
            gaps = rng.integers(0, 3, size=size)
            merchant = np.full(size, shop)
            cents = np.repeat(_lognormal_cents(rng, np.log(300.0), 0.7, 1), size)
            codes = _ONLINE_RETRY_ERRORS if online else _IN_PERSON_RETRY_ERRORS
            err[:-1] = rng.choice(codes, size=size - 1)
        gaps[0] = 0
        out["card"].append(np.full(size, card))
        out["ts"].append(ts + np.cumsum(gaps))
        out["merchant"].append(merchant.astype(np.int64))
        out["cents"].append(cents.astype(np.int64))
        out["err"].append(err)
    return {key: np.concatenate(parts) for key, parts in out.items()}


def _use_chip(
    rng: np.random.Generator, day: np.ndarray, online: np.ndarray, fraud: np.ndarray
) -> np.ndarray:
    """0 swipe, 1 chip, 2 online. Chips spread from Oct 2015; counterfeit cards mostly swipe."""
    p_chip = np.clip((day - _CHIP_DAY) / 540.0, 0.0, 0.85)
    p_chip = np.where(fraud, 0.25 * p_chip, p_chip)
    return np.where(online, 2, rng.random(day.size) < p_chip).astype(np.int64)


def _format_amount(cents: np.ndarray) -> np.ndarray:
    """``"$134.09"`` and, for refunds, ``"$-77.00"`` as in TabFormer's CSV."""
    size = np.abs(cents)
    sign = np.where(cents < 0, "$-", "$").astype(object)
    return sign + (size // 100).astype(str).astype(object) + _CENTS[size % 100]


def generate_transactions(
    n_rows: int = 250_000, *, seed: int = 0, fraud_rate: float = 0.004
) -> pd.DataFrame:
    """Synthetic TabFormer-schema transactions: ``RAW_COLUMNS`` then ``LABEL_COLUMN``.

    Exactly ``n_rows`` rows, index ``0..n_rows-1``, ordered by (User, Card,
    time); ``round(fraud_rate * n_rows)`` of them are labelled ``"Yes"``.
    The same arguments always give the same frame.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be positive, got {n_rows}")
    if not 0.0 <= fraud_rate <= 0.1:
        raise ValueError(f"fraud_rate must lie in [0, 0.1], got {fraud_rate}")
    rng = np.random.default_rng(seed)
    shops = _Merchants.build(rng)
    people = _People.build(rng, max(1, round(n_rows / 300)))

    n_fraud = round(fraud_rate * n_rows)
    n_normal = n_rows - n_fraud
    n_retry = round(_RETRY_SHARE * n_normal)
    rows = _add_benign_errors(rng, _normal_rows(rng, n_normal - n_retry, people, shops), n_retry)
    user = people.card_user[rows["card"]]
    risky = np.isin(shops.mcc[rows["merchant"]], _RISKY_MCC)
    risky_history = np.bincount(user, weights=risky, minlength=people.home.size) > 0
    card_rows = np.bincount(rows["card"], minlength=people.card_user.size)
    fraud = _fraud_rows(rng, n_fraud, people, shops, card_rows, risky_history)
    rows = {key: np.concatenate([rows[key], fraud[key]]) for key in rows}
    is_fraud = np.arange(n_rows) >= n_normal

    order = np.lexsort((rows["ts"], rows["card"]))
    card, ts, merchant = rows["card"][order], rows["ts"][order], rows["merchant"][order]
    is_fraud = is_fraud[order]
    day = ts // _MINUTES_PER_DAY
    date = _EPOCH + day
    month = date.astype("datetime64[M]")
    chip = _use_chip(rng, day, shops.online[merchant], is_fraud)
    return pd.DataFrame(
        {
            "User": people.card_user[card].astype(np.int64),
            "Card": people.card_rank[card].astype(np.int64),
            "Year": date.astype("datetime64[Y]").astype(np.int64) + 1970,
            "Month": month.astype(np.int64) % 12 + 1,
            "Day": (date - month).astype(np.int64) + 1,
            "Time": _HHMM[ts % _MINUTES_PER_DAY],
            "Amount": _format_amount(rows["cents"][order]),
            "Use Chip": _USE_CHIP[chip],
            "Merchant Name": shops.name[merchant],
            "Merchant City": shops.city[merchant],
            "Merchant State": shops.state[merchant],
            "Zip": shops.zip[merchant],
            "MCC": _MCC_TEXT[shops.mcc[merchant]],
            "Errors?": _ERRORS[rows["err"][order]],
            LABEL_COLUMN: np.where(is_fraud, "Yes", "No").astype(object),
        },
        columns=[*RAW_COLUMNS, LABEL_COLUMN],
    )
