"""Money: integer micro-dollars in storage, exact decimal text on the wire, and one formatter
for people that never shows a non-zero amount as $0.00."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

MICROS_PER_DOLLAR = Decimal(1_000_000)


def to_micros(dollars: Decimal) -> int:
    return int(dollars.scaleb(6).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def dollars(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


def usd_text(micros: int) -> str:
    """Exact dollars as plain text for JSON: "6", "0.038339", never an exponent."""
    return format(dollars(micros).normalize(), "f")


def usd(amount: Decimal | str | float | None) -> str:
    """Dollars for people: cents from a dollar up ("$1,234.56"); below a dollar, at least four
    decimals and as many more (to the micro-dollar) as it takes to show two significant digits,
    so "$0.0030" and "$0.000004" are never "$0.00". None reads "N/A"."""
    if amount is None:
        return "N/A"
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    if not value.is_finite():
        return str(amount)
    sign = "-" if value < 0 else ""
    size = abs(value)
    if size >= 1 or size == 0:
        return f"{sign}${size:,.2f}"
    places = 4
    while places < 6 and size < Decimal(10) ** (1 - places):  # fewer than 2 digits showing
        places += 1
    text = f"{size:.{places}f}"
    if Decimal(text) == 0:  # below a micro-dollar: say so rather than print zero
        return f"{sign}<$0.000001"
    return f"{sign}${text}"


def usd_micros(micros: int | None) -> str:
    """:func:`usd` of an amount stored in micro-dollars."""
    return usd(None if micros is None else dollars(micros))
