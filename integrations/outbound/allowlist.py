"""What an admin may put on the outbound allowlist, and URLs naming the hosts it allows.

An entry is a host name or an address/CIDR with an optional port; without one it opens only
the web ports (http.WEB_PORTS). Entries that would switch the guard off need a confirmation:
`0.0.0.0/0` and `::/0` (every address) and any range covering a cloud metadata address, in
any spelling the guard unwraps (`169.254.0.0/16`, `::ffff:0:0/96`, `2002::/16`). Wildcards
(`*`, `*.internal`) are refused: the guard matches host names exactly. A single-label name
(`directus`, as docker compose names services) is allowed with a warning.
"""

import ipaddress
import re
from dataclasses import dataclass, field

from django.core.validators import URLValidator

from integrations.outbound.http import METADATA_ADDRESSES

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass
class Entry:
    """A checked allowlist value: what it is, what needs confirming, what to warn about."""

    value: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    risks: list[str] = field(default_factory=list)  # each needs an explicit confirmation
    warnings: list[str] = field(default_factory=list)


def _spellings(address) -> list:
    """The networks through which the guard reaches address (see http._reached)."""
    if address.version == 6:
        return [ipaddress.ip_network(address)]
    packed = int(address)
    return [
        ipaddress.ip_network(address),
        ipaddress.ip_network(f"::ffff:{address}"),  # IPv4-mapped
        ipaddress.ip_network(
            ipaddress.IPv6Address(int(ipaddress.ip_address("64:ff9b::")) | packed)
        ),
        ipaddress.ip_network((int(ipaddress.ip_address("2002::")) | packed << 80, 48)),  # 6to4
    ]


def risks(network) -> list[str]:
    """Why allowing network would switch the guard off (empty: it would not)."""
    found = []
    if network.prefixlen == 0:
        found.append(f"{network} is every IPv{network.version} address: it turns the guard off")
    covered = sorted(
        str(m)
        for m in METADATA_ADDRESSES
        if any(s.version == network.version and network.overlaps(s) for s in _spellings(m))
    )
    if covered:
        found.append(
            f"{network} covers the cloud metadata address {', '.join(covered)}, which hands "
            "out the server's cloud credentials"
        )
    return found


def parse_entry(text: str) -> Entry:
    """Check one allowlist value; raises ValueError with a sentence for a person."""
    value = text.strip().lower().rstrip(".")
    if not value:
        raise ValueError("Type a host name, an IP address or a CIDR.")
    if "*" in value:
        raise ValueError(
            "Wildcards are not allowed: type the exact host name, or a CIDR such as 10.0.0.0/8."
        )
    looks_like_address = "/" in value or ":" in value or value.replace(".", "").isdigit()
    if looks_like_address:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError("Not a valid IP address or CIDR (e.g. 10.0.0.0/8).") from None
        shown = str(network) if "/" in value else value  # 10.0.0.1/8 is kept as 10.0.0.0/8
        return Entry(shown, network, risks(network))
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError("Not a valid host name (letters, digits and hyphens between dots).")
    warnings = []
    if len(labels) == 1 and value != "localhost":
        warnings.append(
            f"“{value}” is a single-label name: it means whatever the local resolver says "
            "(a docker compose service, a search domain), so check that it is the host you "
            "expect on every machine Kiln runs on."
        )
    return Entry(value, None, [], warnings)


class HostURLValidator(URLValidator):
    """URLValidator that also takes single-label hosts: `http://directus:8055` (compose)."""

    host_re = (
        "("
        + URLValidator.hostname_re
        + URLValidator.domain_re
        + URLValidator.tld_re
        + "|"
        + URLValidator.hostname_re
        + ")"
    )
    regex = re.compile(
        r"^(?:[a-z0-9.+-]*)://"  # scheme is validated separately
        r"(?:[^\s:@/]+(?::[^\s:@/]*)?@)?"  # user:pass authentication
        r"(?:" + URLValidator.ipv4_re + "|" + URLValidator.ipv6_re + "|" + host_re + ")"
        r"(?::[0-9]{1,5})?"  # port
        r"(?:[/?#][^\s]*)?"  # resource path
        r"\Z",
        re.IGNORECASE,
    )
    schemes = ["http", "https"]


validate_url = HostURLValidator()
