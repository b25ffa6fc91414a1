{{/* The chart's name, or nameOverride. */}}
{{- define "sandbox-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects. The release name alone when it already contains the
chart name, so `helm install sandbox-controller .` does not give sandbox-controller-sandbox-controller.
*/}}
{{- define "sandbox-controller.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sandbox-controller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries (Helm's recommended set). */}}
{{- define "sandbox-controller.labels" -}}
helm.sh/chart: {{ include "sandbox-controller.chart" . }}
{{ include "sandbox-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: sandbox
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The labels the Deployment selects its pods by and the Service selects endpoints by: never change them. */}}
{{- define "sandbox-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sandbox-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sandbox-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sandbox-controller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election is on exactly when more than one replica runs. */}}
{{- define "sandbox-controller.leaderElection" -}}
{{- if gt (int .Values.replicas) 1 }}true{{ end }}
{{- end }}

{{/* The leader-election Lease's name (LEASE_NAME). */}}
{{- define "sandbox-controller.leaseName" -}}
{{- include "sandbox-controller.fullname" . }}
{{- end }}

{{- define "sandbox-controller.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* An env entry read from an existing Secret: (list "ENV_NAME" .Values.some.secretRef). */}}
{{- define "sandbox-controller.secretEnv" -}}
{{- $env := index . 0 }}
{{- $ref := index . 1 -}}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name | quote }}
      key: {{ $ref.key | quote }}
{{- end }}
