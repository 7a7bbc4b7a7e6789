"""More of the seed's procedure with Microsoft's Python SDKs at their default
settings (after seed_slice.py, against the same world): provider, vault
create, access policy and RBAC grants, key rotate and disable, a
user-assigned identity, an account on it, list, key URI swap, a
point-in-time restore of the continuous account (the seed's "Restore a
continuous account that is configured with managed identity": a new
user-assigned identity granted on the vault, the restorable account looked up
through the SDK, createMode Restore), the restored account's identity
carrying the source's user-assigned identity (the seed's last FAQ), delete,
and refusals. Same rules as seed_slice.py (seed_common.py): nothing here names
the simulator; one JSON object per step; the first failure ends the run.
Bodies given as dicts use the REST (camelCase) names: the current
azure-mgmt-* packages send a dict body as it is.
"""

import datetime
import os
import time
import uuid

from azure.keyvault.keys import KeyClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.cosmosdb import CosmosDBManagementClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.resource.resources import ResourceManagementClient
from seed_common import ACCOUNT, RG, SUB, TENANT, VAULT, cred, refused, step

RBAC_VAULT = os.environ["SEED_RBAC_VAULT"]
OPERATOR = os.environ["SEED_OPERATOR_OBJECT_ID"]
# Azure Cosmos DB's first-party principal in this tenant, and the built-in
# roles "Key Vault Crypto Service Encryption User" and "Key Vault Administrator".
FIRST_PARTY = os.environ["SEED_FIRST_PARTY_OBJECT_ID"]
CRYPTO_SERVICE_ENCRYPTION_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
KEY_VAULT_ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"

resources = ResourceManagementClient(cred, SUB)
kv_mgmt = KeyVaultManagementClient(cred, SUB)
authz = AuthorizationManagementClient(cred, SUB)
msi = ManagedServiceIdentityClient(cred, SUB)
cosmos = CosmosDBManagementClient(cred, SUB)


def provider():
    p = resources.providers.get("Microsoft.DocumentDB")
    if p.registration_state != "Registered":
        resources.providers.register("Microsoft.DocumentDB")
        p = resources.providers.get("Microsoft.DocumentDB")
    return {"registration_state": p.registration_state}


step("provider", provider)


def create_rbac_vault():
    v = kv_mgmt.vaults.begin_create_or_update(
        RG,
        RBAC_VAULT,
        {
            "location": "westus",
            "properties": {
                "tenantId": TENANT,
                "sku": {"family": "A", "name": "standard"},
                "enableSoftDelete": True,
                "enablePurgeProtection": True,
                "enableRbacAuthorization": True,
                "accessPolicies": [],
            },
        },
    ).result()
    return {"id": v.id, "vault_uri": v.properties.vault_uri}


rbac_vault = step("create_rbac_vault", create_rbac_vault)


def grant(scope, role, principal):
    a = authz.role_assignments.create(
        scope,
        str(uuid.uuid4()),
        {
            "role_definition_id": f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}",
            "principal_id": principal,
            "principal_type": "ServicePrincipal",
        },
    )
    return {"id": a.id, "principal_id": a.principal_id}


step("rbac_grant_operator", lambda: grant(rbac_vault["id"], KEY_VAULT_ADMINISTRATOR, OPERATOR))
step(
    "rbac_grant_first_party",
    lambda: grant(rbac_vault["id"], CRYPTO_SERVICE_ENCRYPTION_USER, FIRST_PARTY),
)


def list_grants():
    found = list(authz.role_assignments.list_for_scope(rbac_vault["id"]))
    return {"count": len(found)}


step("list_grants", list_grants)

rbac_keys = KeyClient(rbac_vault["vault_uri"], cred)


def rbac_key():
    k = rbac_keys.create_rsa_key("cmk", size=3072)
    return {"kid": k.id}


step("create_rbac_key", rbac_key)

vault_uri = kv_mgmt.vaults.get(RG, VAULT).properties.vault_uri
keys = KeyClient(vault_uri, cred)


def rotate_and_disable():
    before = keys.get_key("cmk")
    rotated = keys.rotate_key("cmk")
    old = keys.update_key_properties("cmk", version=before.properties.version, enabled=False)
    versions = [v.version for v in keys.list_properties_of_key_versions("cmk")]
    return {
        "old": before.properties.version,
        "new": rotated.properties.version,
        "old_enabled": old.properties.enabled,
        "versions": len(versions),
    }


rotation = step("rotate_and_disable", rotate_and_disable)
# A disabled version stays readable (azure-cli's recorded test_keyvault_key.yaml).
step(
    "disabled_key_version_readable",
    lambda: {"enabled": keys.get_key("cmk", version=rotation["old"]).properties.enabled},
)


def identity():
    i = msi.user_assigned_identities.create_or_update(RG, "id-py", {"location": "westus"})
    return {"id": i.id, "principal_id": i.principal_id, "client_id": i.client_id}


uai = step("user_assigned_identity", identity)


def add_cmk_policy(principal):
    """Get, WrapKey and UnwrapKey on the access-policy vault for `principal`."""
    return kv_mgmt.vaults.update_access_policy(
        RG,
        VAULT,
        "add",
        {
            "properties": {
                "accessPolicies": [
                    {
                        "tenantId": TENANT,
                        "objectId": principal,
                        "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]},
                    }
                ]
            }
        },
    )


def policy_for_identity():
    out = add_cmk_policy(uai["principal_id"])
    return {"policies": len(out.properties.access_policies)}


step("access_policy_for_identity", policy_for_identity)


def account_on_identity():
    a = cosmos.database_accounts.begin_create_or_update(
        RG,
        "acct-py-uai",
        {
            "location": "westus",
            "kind": "GlobalDocumentDB",
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {uai["id"]: {}}},
            "properties": {
                "databaseAccountOfferType": "Standard",
                "locations": [{"locationName": "westus", "failoverPriority": 0}],
                "keyVaultKeyUri": f"{vault_uri}keys/cmk",
                "defaultIdentity": f"UserAssignedIdentity={uai['id']}",
                "backupPolicy": {"type": "Continuous"},
            },
        },
    ).result()
    return {"provisioning_state": a.provisioning_state, "default_identity": a.default_identity}


step("account_on_user_assigned_identity", account_on_identity)


def system_assigned_two_step():
    # Created on the first-party identity with a system-assigned identity,
    # then that identity is granted and made the default.
    a = cosmos.database_accounts.begin_create_or_update(
        RG,
        "acct-py-sys",
        {
            "location": "westus",
            "kind": "GlobalDocumentDB",
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "databaseAccountOfferType": "Standard",
                "locations": [{"locationName": "westus", "failoverPriority": 0}],
                "keyVaultKeyUri": f"{vault_uri}keys/cmk",
                "defaultIdentity": "FirstPartyIdentity",
            },
        },
    ).result()
    principal = a.identity.principal_id
    add_cmk_policy(principal)
    b = cosmos.database_accounts.begin_update(
        RG, "acct-py-sys", {"properties": {"defaultIdentity": "SystemAssignedIdentity"}}
    ).result()
    return {
        "principal_id": principal,
        "provisioning_state": b.provisioning_state,
        "default_identity": b.default_identity,
    }


step("system_assigned_two_step", system_assigned_two_step)


def list_accounts():
    in_rg = [a.name for a in cosmos.database_accounts.list_by_resource_group(RG)]
    in_sub = [a.name for a in cosmos.database_accounts.list()]
    return {"in_resource_group": sorted(in_rg), "in_subscription": sorted(in_sub)}


step("list_accounts", list_accounts)


step(
    "rbac_grant_identity",
    lambda: grant(rbac_vault["id"], CRYPTO_SERVICE_ENCRYPTION_USER, uai["principal_id"]),
)


def swap_key():
    a = cosmos.database_accounts.begin_update(
        RG,
        "acct-py-uai",
        {"properties": {"keyVaultKeyUri": f"{rbac_vault['vault_uri']}keys/cmk"}},
    ).result()
    return {"provisioning_state": a.provisioning_state, "key_vault_key_uri": a.key_vault_key_uri}


step("key_uri_swap", swap_key)


def restorable_source():
    """The continuous source as `az cosmosdb restore` finds it: the restorable
    accounts of its region, by account name, then read by instance id."""
    found = [
        r
        for r in cosmos.restorable_database_accounts.list_by_location("westus")
        if r.account_name == "acct-py-uai"
    ]
    assert len(found) == 1, [r.account_name for r in found]
    r = cosmos.restorable_database_accounts.get_by_location("westus", found[0].name)
    return {"id": r.id, "instance_id": r.name, "account_name": r.account_name}


source = step("restorable_lookup", restorable_source)


def restore_identity():
    # Seed, restore steps 1 and 2: a new user-assigned identity, granted on the
    # vault that holds the source's key (now the RBAC vault, after the swap).
    i = msi.user_assigned_identities.create_or_update(RG, "id-py-restore", {"location": "westus"})
    grant(rbac_vault["id"], CRYPTO_SERVICE_ENCRYPTION_USER, i.principal_id)
    return {"id": i.id, "principal_id": i.principal_id}


new_uai = step("restore_identity", restore_identity)


def restore(name, identity_id):
    # A restore timestamp after the source's creation (whole seconds, UTC).
    time.sleep(1.1)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    a = cosmos.database_accounts.begin_create_or_update(
        RG,
        name,
        {
            "location": "westus",
            "kind": "GlobalDocumentDB",
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}},
            "properties": {
                "databaseAccountOfferType": "Standard",
                "locations": [{"locationName": "westus", "failoverPriority": 0}],
                "createMode": "Restore",
                "restoreParameters": {
                    "restoreMode": "PointInTime",
                    "restoreSource": source["id"],
                    "restoreTimestampInUtc": when,
                },
                "defaultIdentity": f"UserAssignedIdentity={identity_id}",
            },
        },
    ).result()
    return {
        "provisioning_state": a.provisioning_state,
        "default_identity": a.default_identity,
        "key_vault_key_uri": a.key_vault_key_uri,
        "identities": sorted(i.lower() for i in a.identity.user_assigned_identities),
        "customer_managed_key_status": a.customer_managed_key_status,
    }


# Seed, restore step 3: the new identity assigned and made the default.
step("restore_with_new_identity", lambda: restore("acct-py-restored", new_uai["id"]))
# The trap of the seed's last FAQ: a restore on the source's own identity.
step("restore_on_source_identity", lambda: restore("acct-py-restored-src", uai["id"]))


def plain_account(rg, name, location="westus", **props):
    return cosmos.database_accounts.begin_create_or_update(
        rg,
        name,
        {
            "location": location,
            "properties": {
                "databaseAccountOfferType": "Standard",
                "locations": [{"locationName": location, "failoverPriority": 0}],
                **props,
            },
        },
    ).result()


step(
    "versioned_key_uri_refused",
    lambda: refused(
        lambda: plain_account(RG, "acct-py-versioned", keyVaultKeyUri=keys.get_key("cmk").id)
    ),
)
step(
    "global_account_name_refused",
    lambda: refused(lambda: plain_account(RG + "-other", ACCOUNT)),
)
step(
    "unknown_region_refused",
    lambda: refused(lambda: plain_account(RG, "acct-py-mars", location="marsnorth")),
)
step(
    "first_party_with_continuous_backup_refused",
    lambda: refused(
        lambda: plain_account(
            RG,
            "acct-py-fpc",
            keyVaultKeyUri=f"{vault_uri}keys/cmk",
            defaultIdentity="FirstPartyIdentity",
            backupPolicy={"type": "Continuous"},
        )
    ),
)


def delete():
    cosmos.database_accounts.begin_delete(RG, "acct-py-uai").result()
    names = [a.name for a in cosmos.database_accounts.list_by_resource_group(RG)]
    return {"left": sorted(names)}


step("delete_account", delete)


def restored_after_source_deleted():
    """The seed's last FAQ: the identity metadata carried over stays bound to
    the deleted source; the account restored on a new identity keeps its key,
    the one restored on the source's identity loses it."""
    out = {}
    for name in ["acct-py-restored", "acct-py-restored-src"]:
        a = cosmos.database_accounts.get(RG, name)
        out[name] = {
            "identities": sorted(i.lower() for i in a.identity.user_assigned_identities),
            "default_identity": a.default_identity,
            "customer_managed_key_status": a.customer_managed_key_status,
        }
    return out


step("restored_after_source_deleted", restored_after_source_deleted)
