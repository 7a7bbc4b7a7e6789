-- A new cosmoscmk.io/rotate value: the operator makes one new version of the
-- binding's key (POST /keys/{name}/rotate), and the accounts on it follow.
-- os is a module in Argo CD's sandbox (its safe os: time and date only).
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["cosmoscmk.io/rotate"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
