{{- define "ico.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ico.labels" -}}
app.kubernetes.io/name: image-cleanup-operator
app.kubernetes.io/part-of: image-cleanup-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "ico.selector" -}}
app.kubernetes.io/name: image-cleanup-operator
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ico.agentServiceAccount" -}}
{{ .Values.namePrefix }}agent
{{- end -}}


{{- /* Pod labels: the selector's, and which release and version run it. */ -}}
{{- define "ico.podLabels" -}}
{{ include "ico.selector" (dict "component" .component) }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | quote }}
{{- end -}}

{{/*
The host folders of the node's runtime: agent.distribution's, or as given.
*/}}
{{- define "ico.hostRun" -}}
{{- $d := .Values.agent.distribution -}}
{{- if eq $d "k3s" "rke2" -}}/run/k3s
{{- else if eq $d "k0s" -}}/run/k0s
{{- else if eq $d "microk8s" -}}/var/snap/microk8s/common/run
{{- else -}}{{ .Values.agent.hostRun }}
{{- end -}}
{{- end -}}

{{- define "ico.containerdRoot" -}}
{{- $d := .Values.agent.distribution -}}
{{- if eq $d "k3s" -}}/var/lib/rancher/k3s/agent/containerd
{{- else if eq $d "rke2" -}}/var/lib/rancher/rke2/agent/containerd
{{- else if eq $d "k0s" -}}/var/lib/k0s/containerd
{{- else if eq $d "microk8s" -}}/var/snap/microk8s/common/var/lib/containerd
{{- else -}}{{ .Values.agent.containerdRoot }}
{{- end -}}
{{- end -}}

{{- define "ico.dataRoot" -}}
{{- if not .Values.agent.distribution -}}{{ .Values.agent.dataRoot }}{{- end -}}
{{- end -}}

{{- define "ico.containersStorage" -}}
{{- if not .Values.agent.distribution -}}{{ .Values.agent.containersStorage }}{{- end -}}
{{- end -}}
