-- Argo CD health of an ImageCleanupPolicy (imagecleanup.io/ImageCleanupPolicy),
-- read from the conditions its aggregator writes. Install: docs/gitops.md.
local hs = { status = "Progressing", message = "waiting for the aggregator to report on this generation" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  return hs
end
local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  if c.observedGeneration == nil or c.observedGeneration == obj.metadata.generation then
    conditions[c.type] = c
  end
end
local function true_(kind)
  return conditions[kind] ~= nil and conditions[kind].status == "True"
end
if true_("Stalled") then
  return { status = "Degraded", message = conditions["Stalled"].message }
end
if true_("Degraded") then
  return { status = "Degraded", message = conditions["Degraded"].message }
end
if true_("Reconciling") then
  return { status = "Progressing", message = conditions["Reconciling"].message }
end
if true_("Ready") then
  if obj.spec ~= nil and obj.spec.suspend then
    return { status = "Suspended", message = "suspended: no node removes anything" }
  end
  return { status = "Healthy", message = conditions["Ready"].message }
end
return hs
