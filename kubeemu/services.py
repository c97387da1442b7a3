"""What kube-apiserver's Service REST storage allocates: cluster IPs from the service range, node
ports from the node-port range, both released when the Service goes.

Rules and messages from kubernetes/kubernetes `pkg/registry/core/service/storage/alloc.go`,
`pkg/registry/core/service/ipallocator` and `portallocator` (read 2026-11-30):
- a requested IP already taken: `failed to allocate IP X: provided IP is already allocated`,
  one outside the range: `failed to allocate IP X: the provided IP (X) is not in the valid range.
  The range of valid IPs is CIDR`, both on field `spec.clusterIPs`;
- a requested node port already taken: `provided port is already allocated`, outside the range:
  `provided port is not in the valid range. The range of valid ports is 30000-32767`, on
  `spec.ports[i].nodePort`;
- `clusterIP: None` is a headless Service (nothing allocated); ExternalName Services get no IP;
- on update an unset clusterIP/nodePort keeps the allocated one; a changed clusterIP is refused
  (`spec.clusterIPs[0]: may not change once set`).
"""

from __future__ import annotations

import ipaddress
import json

#: kubeadm's default `--service-cluster-ip-range`; the `kubernetes` Service takes its first address
SERVICE_CIDR = "10.96.0.0/12"
NODE_PORTS = (30000, 32767)
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


class Refused(Exception):
    """A write the allocator refuses: (field, Go-formatted value, detail), answered 422 Invalid."""

    def __init__(self, field: str, value: str, detail: str):
        super().__init__(f"{field}: Invalid value: {value}: {detail}")
        self.field = field
        self.value = value
        self.detail = detail


def go_strings(values: list) -> str:
    """A `[]string` as Go's %#v prints it (how the real field error shows the clusterIPs)."""
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"


class ServiceAllocator:
    """The cluster-IP and node-port allocators of one control plane (not thread-safe: the store's
    lock orders every call)."""

    def __init__(self, cidr: str = SERVICE_CIDR, node_ports: tuple[int, int] = NODE_PORTS):
        self.network = ipaddress.ip_network(cidr)
        self.node_ports = node_ports
        self.ips: set[str] = set()
        self.ports: set[int] = set()
        self._next_ip = 1
        self._next_port = node_ports[0]

    def first_ip(self) -> str:
        return str(self.network.network_address + 1)

    # -- create ------------------------------------------------------------------------------------

    def allocate(self, service: dict) -> None:
        """Fill in `spec.clusterIP`/`clusterIPs`/`ipFamilies`/`type`/node ports of a new Service
        (in place), or raise `Refused`; nothing stays allocated when it raises."""
        spec = service.setdefault("spec", {})
        if not isinstance(spec, dict):
            return  # the shape is the validator's to refuse
        spec.setdefault("type", "ClusterIP")
        for port in spec.get("ports") if isinstance(spec.get("ports"), list) else ():
            if isinstance(port, dict):  # SetDefaults_Service
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        taken_ips: list[str] = []
        try:
            if spec["type"] != "ExternalName":
                requested = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0]
                if requested == "None":
                    spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
                else:
                    ip = self._take_ip(requested, spec) if requested else self._next_free_ip()
                    taken_ips.append(ip)
                    spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
                spec.setdefault("sessionAffinity", "None")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            self._allocate_ports(spec, {})
        except Refused:
            for ip in taken_ips:
                self.ips.discard(ip)
            raise

    def _take_ip(self, requested: str, spec: dict) -> str:
        try:
            address = ipaddress.ip_address(requested)
        except ValueError:
            raise Refused("spec.clusterIPs", go_strings(spec.get("clusterIPs") or [requested]),
                          f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid "
                          f"range. The range of valid IPs is {self.network}") from None
        if address not in self.network or address in (self.network.network_address, self.network.broadcast_address):
            raise Refused("spec.clusterIPs", go_strings(spec.get("clusterIPs") or [requested]),
                          f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the valid "
                          f"range. The range of valid IPs is {self.network}")
        if str(address) in self.ips:
            raise Refused("spec.clusterIPs", go_strings(spec.get("clusterIPs") or [requested]),
                          f"failed to allocate IP {requested}: provided IP is already allocated")
        self.ips.add(str(address))
        return str(address)

    def _next_free_ip(self) -> str:
        size = self.network.num_addresses - 2
        for step in range(size):
            offset = (self._next_ip - 1 + step) % size + 1
            ip = str(self.network.network_address + offset)
            if ip not in self.ips:
                self.ips.add(ip)
                self._next_ip = offset + 1
                return ip
        raise Refused("spec.clusterIPs", "[]string(nil)", "failed to allocate a serviceIP: range is full")

    def _allocate_ports(self, spec: dict, kept: dict[tuple, int]) -> None:
        """Node ports for NodePort/LoadBalancer Services: requested ones checked and taken, missing
        ones kept from the previous version (`kept`, by port and protocol) or allocated."""
        ports = spec.get("ports") if isinstance(spec.get("ports"), list) else []
        if spec.get("type") not in NODE_PORT_TYPES:
            for port in ports:
                if isinstance(port, dict):
                    port.pop("nodePort", None)
            return
        taken: list[int] = []
        try:
            for i, port in enumerate(ports):
                if not isinstance(port, dict):
                    continue
                wanted = port.get("nodePort")
                previous = kept.get((port.get("port"), port.get("protocol", "TCP")))
                if wanted in (None, 0) and previous:
                    port["nodePort"] = previous
                    continue
                if wanted == previous and previous:
                    continue
                if wanted in (None, 0):
                    port["nodePort"] = self._next_free_port()
                else:
                    if not isinstance(wanted, int) or not self.node_ports[0] <= wanted <= self.node_ports[1]:
                        raise Refused(f"spec.ports[{i}].nodePort", json.dumps(wanted),
                                      "provided port is not in the valid range. The range of valid ports is "
                                      f"{self.node_ports[0]}-{self.node_ports[1]}")
                    if wanted in self.ports:
                        raise Refused(f"spec.ports[{i}].nodePort", json.dumps(wanted), "provided port is already allocated")
                    self.ports.add(wanted)
                taken.append(port["nodePort"])
                port.setdefault("protocol", "TCP")
        except Refused:
            for number in taken:
                self.ports.discard(number)
            raise

    def _next_free_port(self) -> int:
        low, high = self.node_ports
        for step in range(high - low + 1):
            number = low + (self._next_port - low + step) % (high - low + 1)
            if number not in self.ports:
                self.ports.add(number)
                self._next_port = number + 1
                return number
        raise Refused("spec.ports", "[]", "range is full")

    # -- update, delete ----------------------------------------------------------------------------

    def reallocate(self, old: dict, new: dict) -> None:
        """An update: the allocated IP carries over when the new spec leaves it unset, a changed one
        is refused; node ports carry over, are added when the type gains them and released when it
        loses them."""
        old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("type", old_spec.get("type", "ClusterIP"))
        old_ips = old_spec.get("clusterIPs") or ([old_spec["clusterIP"]] if old_spec.get("clusterIP") else [])
        requested = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        if spec["type"] != "ExternalName" and old_ips:
            if not requested:
                spec["clusterIP"], spec["clusterIPs"] = old_ips[0], list(old_ips)
            elif requested[0] != old_ips[0]:
                raise Refused("spec.clusterIPs[0]", go_strings(requested), "may not change once set")
            else:
                spec["clusterIP"], spec["clusterIPs"] = requested[0], list(requested)
            for key in ("ipFamilies", "ipFamilyPolicy"):
                if key in old_spec:
                    spec.setdefault(key, old_spec[key])
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p["nodePort"]
                     for p in old_spec.get("ports") or () if isinstance(p, dict) and p.get("nodePort")}
        self._allocate_ports(spec, old_ports)
        still = {p.get("nodePort") for p in spec.get("ports") or () if isinstance(p, dict)}
        for number in set(old_ports.values()) - still:
            self.ports.discard(number)

    def release(self, service: dict) -> None:
        spec = service.get("spec") or {}
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            self.ips.discard(ip)
        for port in spec.get("ports") or ():
            if isinstance(port, dict) and port.get("nodePort"):
                self.ports.discard(port["nodePort"])
