{{/* Resource names: the release name, unless it already contains "portico". */}}
{{- define "portico.fullname" -}}
{{- if contains "portico" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-portico" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "portico.controllerName" -}}
{{- printf "%s-controller" (include "portico.fullname" .) -}}
{{- end -}}

{{- define "portico.speakerName" -}}
{{- printf "%s-speaker" (include "portico.fullname" .) -}}
{{- end -}}

{{/* The speaker runs only where addresses of AddressPools need announcing: portico.dev/l2 enabled. */}}
{{- define "portico.speakerEnabled" -}}
{{- if and .Values.speaker.enabled (has "portico.dev/l2" .Values.providers) -}}true{{- end -}}
{{- end -}}

{{- define "portico.commonLabels" -}}
app.kubernetes.io/name: portico
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "portico.labels" -}}
{{ include "portico.commonLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "portico.speakerLabels" -}}
{{ include "portico.commonLabels" . }}
app.kubernetes.io/component: speaker
{{- end -}}

{{- define "portico.selectorLabels" -}}
app.kubernetes.io/name: portico
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "portico.speakerSelectorLabels" -}}
app.kubernetes.io/name: portico
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: speaker
{{- end -}}
