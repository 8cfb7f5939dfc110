{{/*
Labels on every object of the chart. `nodemesh install --dry-run` renders the same objects from
helm/install/manifests.ts; helm/install/helm-template.unit.test.ts checks that both agree.
*/}}
{{- define "nodemesh.labels" -}}
app.kubernetes.io/part-of: nodemesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "nodemesh.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
