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
