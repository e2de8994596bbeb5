"""Engine key rotation in one command, signed with the admin's key: settle what the old key
has in flight, grant the new key the NAV engine role, revoke the old one, and point
deployment.json at the new key. NAVs computed but not yet sent stay in the store's outbox and
go out under the new key at the next cycle: none is lost between the two keys."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address
from web3 import Web3

from publisher._exceptions import InputError
from publisher.chain import connect, contract_at, send
from publisher.config import Settings
from publisher.deploy import NAV_ENGINE_ROLE, separate_roles
from publisher.deployment import load_deployment, write_deployment
from publisher.keeper import running_keeper
from publisher.keys import load_admin
from publisher.publish import Publisher


@dataclass(frozen=True)
class Rotation:
    """What a rotation did on chain."""

    old: str
    new: str
    settled: int  # the old key's publications settled first
    waiting: int  # NAVs in the outbox that the new key sends next
    grant_tx: str
    revoke_tx: str | None  # None when the old key no longer held the role


def rotate_engine(settings: Settings, new_engine: str) -> Rotation:
    """Rotates the NAV engine role to `new_engine`. Refuses (InputError, nothing sent) while a
    keeper runs on this state directory, while the old key has a transaction whose outcome is
    unknown, or when the new key is the old one, the admin or (off the local chain) a guardian."""
    if not Web3.is_address(new_engine):
        raise InputError(f"--new: {new_engine!r} is not an address (0x followed by 40 hex digits)")
    new = to_checksum_address(new_engine)
    admin = load_admin(settings)
    w3 = connect(settings)
    deployment = load_deployment(settings, w3)
    old = deployment.nav_engine
    if new == old:
        raise InputError(f"--new: {new} is already the NAV engine")
    if not settings.is_local_chain():
        separate_roles(admin.address, new, deployment.guardians)
    publisher = Publisher.from_settings(settings)
    pid = running_keeper(publisher)
    if pid is not None:
        raise InputError(f"a keeper (pid {pid}) runs on this state directory: stop it, rotate, then start it")
    settled = publisher.settle_outbox()
    open_pubs = publisher.store.unfinished_publications()
    if open_pubs:
        ids = ", ".join(str(p.id) for p in open_pubs)
        raise InputError(
            f"the old engine key still has publication(s) {ids} in flight: run `navpub publish` "
            "until they settle, then rotate"
        )
    waiting = len(publisher.store.pending_reports(None))
    vault = contract_at(w3, "FundVault", deployment.vault)
    grant = send(w3, admin, vault.functions.grantRole(NAV_ENGINE_ROLE, new), "grant NAV_ENGINE_ROLE")
    revoke_tx = None
    if vault.functions.hasRole(NAV_ENGINE_ROLE, old).call():
        revoke = send(w3, admin, vault.functions.revokeRole(NAV_ENGINE_ROLE, old), "revoke NAV_ENGINE_ROLE")
        revoke_tx = "0x" + bytes(revoke["transactionHash"]).hex()
    write_deployment(settings.deployment_path, deployment.model_copy(update={"nav_engine": new}))
    return Rotation(old, new, len(settled), waiting, "0x" + bytes(grant["transactionHash"]).hex(), revoke_tx)
