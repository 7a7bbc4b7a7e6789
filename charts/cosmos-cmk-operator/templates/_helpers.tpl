{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "cmk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release + chart unless the release name already contains it. */}}
{{- define "cmk.fullname" -}}
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

{{- define "cmk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cmk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cmk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cmk.labels" -}}
helm.sh/chart: {{ include "cmk.chart" . }}
{{ include "cmk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: cosmos-cmk-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cmk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cmk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cmk.leaseName" -}}
{{- default (include "cmk.fullname" .) .Values.operator.leaseName }}
{{- end }}

{{- define "cmk.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The operator's tenancy policy file (--tenancy-config), from tenancy.namespaces. */}}
{{- define "cmk.tenancyConfig" -}}
{{- dict "namespaces" (.Values.tenancy.namespaces | default list) | toYaml }}
{{- end }}

{{- define "cmk.tenancyConfigMap" -}}
{{- printf "%s-tenancy" (include "cmk.fullname" .) }}
{{- end }}

{{/*
Where the operator may read the Secrets that resources name in
spec.credentialRef (always in the resource's own namespace), from the
tenancy policy, as JSON {"all": bool, "namespaces": [...]}:
- operator.watchNamespace set: that namespace alone, when the policy lists it
  or has a "*" entry;
- a "*" entry (every namespace may use the operator): all namespaces, the
  documented fallback (a rule in the ClusterRole);
- otherwise each listed namespace (a Role and RoleBinding in each).
*/}}
{{- define "cmk.credentialSecrets" -}}
{{- $listed := list }}
{{- range .Values.tenancy.namespaces }}
{{- $listed = append $listed .namespace }}
{{- end }}
{{- $all := false }}
{{- $namespaces := list }}
{{- $watched := .Values.operator.watchNamespace }}
{{- if $watched }}
{{- if or (has $watched $listed) (has "*" $listed) }}
{{- $namespaces = list $watched }}
{{- end }}
{{- else if has "*" $listed }}
{{- $all = true }}
{{- else }}
{{- $namespaces = $listed | uniq }}
{{- end }}
{{- dict "all" $all "namespaces" $namespaces | toJson }}
{{- end }}

{{/* Entra ID's authority host of operator.cloud (AZURE_AUTHORITY_HOST). */}}
{{- define "cmk.authorityHost" -}}
{{- $hosts := dict "AzurePublicCloud" "https://login.microsoftonline.com/" "AzureUSGovernment" "https://login.microsoftonline.us/" "AzureChinaCloud" "https://login.chinacloudapi.cn/" }}
{{- get $hosts .Values.operator.cloud }}
{{- end }}
