"""Vehicle identification numbers: characters and the check digit (ISO 3779, GB 16735).

Every vehicle sold in China carries a check digit in position 9 (GB 16735 makes it
mandatory), so a VIN whose check digit does not match was mistyped: the registry refuses it
(422 on `vin`) rather than storing a number no vehicle has. The seed uses the same function
to generate valid ones.
"""

from __future__ import annotations

from pydantic_core import PydanticCustomError

PATTERN = r"^[A-HJ-NPR-Z0-9]{17}$"  # 17 characters, no I, O or Q
VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(vin: str) -> str:
    """The check digit (position 9) a 17-character VIN must carry: 0–9 or X."""
    total = sum(VALUES[c] * w for c, w in zip(vin, WEIGHTS, strict=True))
    r = total % 11
    return "X" if r == 10 else str(r)


def checked(vin: str) -> str:
    """Pydantic after-validator (the pattern has run): refuse a wrong check digit."""
    want = check_digit(vin)
    if vin[8] != want:
        raise PydanticCustomError(
            "vin_check_digit",
            "VIN check digit (position 9) is {got}, the other characters give {want}:"
            " a character is mistyped",
            {"got": vin[8], "want": want},
        )
    return vin
