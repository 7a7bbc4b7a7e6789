-- A new cosmoscmk.io/reconcile value: the operator reconciles this resource now.
-- os is a module in Argo CD's sandbox (its safe os: time and date only).
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["cosmoscmk.io/reconcile"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
