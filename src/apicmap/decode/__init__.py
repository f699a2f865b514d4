"""Layer 2: decode an injection (raw encoding) into a ``Message``.

The architecture and KVM decode the same bits differently, so there are two decoders:
- ``decode_for_kvm`` follows docs/routing.md#kvm-msi-and-ioapic-decoding (MSI) and
docs/routing.md#kvm-ipis-and-acceptance (ICR, SELF_IPI), per release;
- ``decode_for_arch`` follows the SDM (docs/routing.md, the "Architecture" sections).
A decoder returns ``Refused`` when the write itself fails (EINVAL, #GP) or nothing is sent.
"""

from apicmap.decode.arch import ArchDecoded, decode_for_arch
from apicmap.decode.common import Refused, describe_message, destination
from apicmap.decode.kvm import KvmDecodeRules, decode_for_kvm

__all__ = ["ArchDecoded", "KvmDecodeRules", "Refused", "decode_for_arch", "decode_for_kvm", "describe_message",
           "destination"]
