"""A first slice of the seed's procedure with Microsoft's Python SDKs, at their
default settings, against whatever `management.azure.com`,
`login.microsoftonline.com` and `<vault>.vault.azure.net` resolve to. For a
sovereign cloud, the SDKs' documented settings name it: `AZURE_AUTHORITY_HOST`
(read by the credential) and `SEED_ARM_ENDPOINT` (the management clients'
`base_url` and credential scope); Key Vault's scope comes from its challenge.

tests/sim/python_sdks.rs runs it against the simulator: a hosts file bind-mounted
in a private mount namespace and the simulator's CA as the trust store are
the only changes (docs/simulator.md, "Recipe"). Nothing here names the
simulator. Prints one JSON object per step; exits non-zero on the first
failure, naming the step.
"""

from azure.keyvault.keys import KeyClient
from azure.mgmt.cosmosdb import CosmosDBManagementClient
from azure.mgmt.keyvault import KeyVaultManagementClient
import os

from seed_common import ACCOUNT, RG, SUB, VAULT, cred, step

ARM = os.environ.get("SEED_ARM_ENDPOINT", "https://management.azure.com").rstrip("/")
# The management clients' settings for a cloud: endpoint and token scope.
MGMT = {"base_url": ARM, "credential_scopes": [f"{ARM}/.default"]}


def token():
    t = cred.get_token(f"{ARM}/.default")
    return {"expires_on": t.expires_on}


step("token", token)

kv_mgmt = KeyVaultManagementClient(cred, SUB, **MGMT)


def get_vault():
    v = kv_mgmt.vaults.get(RG, VAULT)
    return {
        "vault_uri": v.properties.vault_uri,
        "soft_delete": v.properties.enable_soft_delete,
        "purge_protection": v.properties.enable_purge_protection,
    }


vault = step("get_vault", get_vault)

keys = KeyClient(vault["vault_uri"], cred)


def create_key():
    k = keys.create_rsa_key("cmk", size=3072)
    return {"kid": k.id, "name": k.name, "version": k.properties.version}


key = step("create_key", create_key)
versionless = f"{vault['vault_uri']}keys/cmk"

cosmos = CosmosDBManagementClient(cred, SUB, **MGMT)


def create_account():
    poller = cosmos.database_accounts.begin_create_or_update(
        RG,
        ACCOUNT,
        {
            "location": "westus",
            "kind": "GlobalDocumentDB",
            "properties": {
                "databaseAccountOfferType": "Standard",
                "locations": [{"locationName": "westus", "failoverPriority": 0}],
                "keyVaultKeyUri": versionless,
                "defaultIdentity": "FirstPartyIdentity",
            },
        },
    )
    a = poller.result()
    return {"provisioning_state": a.provisioning_state, "id": a.id}


step("create_account", create_account)


def get_account():
    a = cosmos.database_accounts.get(RG, ACCOUNT)
    return {
        "provisioning_state": a.provisioning_state,
        "key_vault_key_uri": a.key_vault_key_uri,
        "default_identity": a.default_identity,
        "document_endpoint": a.document_endpoint,
    }


step("get_account", get_account)
