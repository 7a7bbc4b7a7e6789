-- Argo CD resource actions for cosmoscmk.io KeyVaultBinding and CosmosAccountCMK.
-- reconcile: both kinds; rotate: a binding whose key exists (docs/rotating-keys.md).
local actions = {}
actions["reconcile"] = {}
if obj.kind == "KeyVaultBinding" then
  local has_key = obj.status ~= nil and obj.status.keyVersion ~= nil
  actions["rotate"] = {["disabled"] = not has_key}
end
return actions
