-- Argo CD health check for cosmoscmk.io KeyVaultBinding and CosmosAccountCMK.
-- Healthy: the Ready condition is True for the current generation.
-- Degraded: phase Failed or Revoked (message from the Ready condition).
-- Progressing: no status yet, a status for an older generation, or a stage running.
local hs = {}

local function ready_condition(status)
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == "Ready" then
        return c
      end
    end
  end
  return nil
end

local function describe(ready, fallback)
  if ready ~= nil then
    if ready.message ~= nil and ready.message ~= "" then
      return ready.message
    end
    if ready.reason ~= nil and ready.reason ~= "" then
      return ready.reason
    end
  end
  return fallback
end

local generation = obj.metadata.generation
local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local phase = status.phase
if phase == nil or phase == "" then
  phase = "Pending"
end

if obj.metadata.deletionTimestamp ~= nil or phase == "Deleting" then
  hs.status = "Progressing"
  hs.message = "Deleting"
  -- Argo CD (gitops-engine) answers "Pending deletion" for an object being
  -- deleted unless the check sets deletionMessage (Argo CD 3.6 and later).
  hs.deletionMessage = "Deleting"
  return hs
end

if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = ready_condition(status)

if phase == "Failed" or phase == "Revoked" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. describe(ready, "no Ready condition")
  return hs
end

if ready ~= nil and ready.status == "True"
    and (ready.observedGeneration == nil or generation == nil or ready.observedGeneration == generation) then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = phase .. ": " .. describe(ready, "waiting for the operator")
return hs
