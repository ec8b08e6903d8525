{{/* The name of every object of the release (Service, Deployment, webhook configuration...). */}}
{{- define "injector.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "injector.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "injector.selectorLabels" -}}
app: {{ include "injector.fullname" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The DNS name the kube-apiserver calls, which the injector's SVID must carry. */}}
{{- define "injector.serviceDns" -}}
{{ include "injector.fullname" . }}.{{ .Release.Namespace }}.svc
{{- end -}}
