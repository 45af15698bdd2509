// Written by hack/update-harvester from github.com/harvester/harvester@v1.6.0's go.mod: its go line
// and replace directives. Do not edit; run hack/update-harvester.

module github.com/upgrade-image-cleanup/upgrade-image-cleanup/examples/harvester-v1.6

go 1.24.2

require (
	github.com/harvester/harvester v1.6.0
	github.com/rancher/lasso v0.2.3
	github.com/rancher/wrangler/v3 v3.2.2
	github.com/sirupsen/logrus v1.9.3
	github.com/upgrade-image-cleanup/upgrade-image-cleanup v0.0.0
	k8s.io/api v0.33.1
	k8s.io/apimachinery v0.33.1
	k8s.io/client-go v12.0.0+incompatible
	k8s.io/utils v0.0.0-20250502105355-0f33e8f1c979
)

require (
	emperror.dev/errors v0.8.1 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/blang/semver/v4 v4.0.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/cisco-open/operator-tools v0.34.0 // indirect
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc // indirect
	github.com/distribution/reference v0.6.0 // indirect
	github.com/emicklei/go-restful/v3 v3.12.2 // indirect
	github.com/evanphx/json-patch v5.9.11+incompatible // indirect
	github.com/evanphx/json-patch/v5 v5.9.11 // indirect
	github.com/fsnotify/fsnotify v1.9.0 // indirect
	github.com/fxamacker/cbor/v2 v2.8.0 // indirect
	github.com/ghodss/yaml v1.0.0 // indirect
	github.com/go-logr/logr v1.4.2 // indirect
	github.com/go-logr/zapr v1.3.0 // indirect
	github.com/go-openapi/jsonpointer v0.21.1 // indirect
	github.com/go-openapi/jsonreference v0.21.0 // indirect
	github.com/go-openapi/swag v0.23.1 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/golang/groupcache v0.0.0-20241129210726-2c02b8208cf8 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/google/gnostic-models v0.6.9 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/google/gofuzz v1.2.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/harvester/harvester-network-controller v1.6.0-rc3 // indirect
	github.com/harvester/node-manager v1.6.0-rc3 // indirect
	github.com/iancoleman/orderedmap v0.3.0 // indirect
	github.com/imdario/mergo v0.3.16 // indirect
	github.com/josharian/intern v1.0.0 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/k3s-io/helm-controller v0.16.1 // indirect
	github.com/k8snetworkplumbingwg/network-attachment-definition-client v1.7.5 // indirect
	github.com/k8snetworkplumbingwg/whereabouts v0.8.0 // indirect
	github.com/kube-logging/logging-operator/pkg/sdk v0.11.1-0.20240314152935-421fefebc813 // indirect
	github.com/kubernetes-csi/external-snapshotter/client/v4 v4.2.0 // indirect
	github.com/kubernetes/dashboard v1.10.1 // indirect
	github.com/longhorn/longhorn-manager v1.8.1 // indirect
	github.com/mailru/easyjson v0.9.0 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/openshift/custom-resource-status v1.1.2 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring v0.78.2 // indirect
	github.com/prometheus/client_golang v1.22.0 // indirect
	github.com/prometheus/client_model v0.6.1 // indirect
	github.com/prometheus/common v0.62.0 // indirect
	github.com/prometheus/procfs v0.15.1 // indirect
	github.com/rancher/aks-operator v1.9.2 // indirect
	github.com/rancher/eks-operator v1.9.2 // indirect
	github.com/rancher/fleet/pkg/apis v0.10.0 // indirect
	github.com/rancher/gke-operator v1.9.2 // indirect
	github.com/rancher/norman v0.0.0-20241001183610-78a520c160ab // indirect
	github.com/rancher/rancher v0.0.0-20240618122559-b9ec494d4f6f // indirect
	github.com/rancher/rancher/pkg/apis v0.0.0 // indirect
	github.com/rancher/rke v1.6.2 // indirect
	github.com/rancher/system-upgrade-controller/pkg/apis v0.0.0-20240301001845-4eacc2dabbde // indirect
	github.com/rancher/wrangler v1.1.2 // indirect
	github.com/spf13/cast v1.8.0 // indirect
	github.com/spf13/pflag v1.0.6 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap v1.27.0 // indirect
	golang.org/x/exp v0.0.0-20250506013437-ce4c2cf36ca6 // indirect
	golang.org/x/net v0.40.0 // indirect
	golang.org/x/oauth2 v0.30.0 // indirect
	golang.org/x/sync v0.14.0 // indirect
	golang.org/x/sys v0.33.0 // indirect
	golang.org/x/term v0.32.0 // indirect
	golang.org/x/text v0.25.0 // indirect
	golang.org/x/time v0.11.0 // indirect
	gomodules.xyz/jsonpatch/v2 v2.5.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250519155744-55703ea1f237 // indirect
	google.golang.org/grpc v1.72.2 // indirect
	google.golang.org/protobuf v1.36.6 // indirect
	gopkg.in/evanphx/json-patch.v4 v4.12.0 // indirect
	gopkg.in/inf.v0 v0.9.1 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
	k8s.io/apiextensions-apiserver v0.33.1 // indirect
	k8s.io/apiserver v0.33.1 // indirect
	k8s.io/component-base v0.33.1 // indirect
	k8s.io/cri-api v0.31.5 // indirect
	k8s.io/klog/v2 v2.130.1 // indirect
	k8s.io/kube-openapi v0.31.9 // indirect
	k8s.io/kubernetes v1.32.2 // indirect
	kubevirt.io/api v1.5.0 // indirect
	kubevirt.io/containerized-data-importer-api v1.61.0 // indirect
	kubevirt.io/controller-lifecycle-operator-sdk/api v0.0.0-20220329064328-f3cc58c6ed90 // indirect
	sigs.k8s.io/cli-utils v0.37.2 // indirect
	sigs.k8s.io/cluster-api v1.7.3 // indirect
	sigs.k8s.io/controller-runtime v0.19.7 // indirect
	sigs.k8s.io/json v0.0.0-20241014173422-cfa47c3a1cc8 // indirect
	sigs.k8s.io/structured-merge-diff/v4 v4.7.0 // indirect
	sigs.k8s.io/yaml v1.4.0 // indirect
)

replace github.com/containerd/containerd => github.com/containerd/containerd v1.7.27

replace github.com/docker/distribution => github.com/docker/distribution v2.8.2+incompatible

replace github.com/docker/docker => github.com/docker/docker v25.0.6+incompatible

replace github.com/gin-gonic/gin => github.com/gin-gonic/gin v1.9.1

replace github.com/harvester/harvester-network-controller => github.com/harvester/harvester-network-controller v1.6.0-rc3

replace github.com/openshift/api => github.com/openshift/api v0.0.0-20191219222812-2987a591a72c

replace github.com/openshift/client-go => github.com/openshift/client-go v0.0.0-20200521150516-05eb9880269c

replace github.com/operator-framework/operator-lifecycle-manager => github.com/operator-framework/operator-lifecycle-manager v0.0.0-20190128024246-5eb7ae5bdb7a

replace github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring => github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring v0.68.0

replace github.com/rancher/lasso => github.com/rancher/lasso v0.0.0-20241202185148-04649f379358

replace github.com/rancher/rancher/pkg/apis => github.com/rancher/rancher/pkg/apis v0.0.0-20240919204204-3da2ae0cabd1

replace github.com/rancher/rancher/pkg/client => github.com/rancher/rancher/pkg/client v0.0.0-20240919204204-3da2ae0cabd1

replace github.com/rancher/rancher => github.com/rancher/rancher v0.0.0-20240919204204-3da2ae0cabd1

replace go.qase.io/client => github.com/rancher/qase-go/client v0.0.0-20231114201952-65195ec001fa

replace helm.sh/helm/v3 => github.com/rancher/helm/v3 v3.15.1-rancher2

replace k8s.io/api => k8s.io/api v0.31.5

replace k8s.io/apiextensions-apiserver => k8s.io/apiextensions-apiserver v0.31.5

replace k8s.io/apimachinery => k8s.io/apimachinery v0.31.5

replace k8s.io/apiserver => k8s.io/apiserver v0.31.5

replace k8s.io/cli-runtime => k8s.io/cli-runtime v0.31.5

replace k8s.io/client-go => k8s.io/client-go v0.31.5

replace k8s.io/cloud-provider => k8s.io/cloud-provider v0.31.5

replace k8s.io/cluster-bootstrap => k8s.io/cluster-bootstrap v0.31.5

replace k8s.io/code-generator => k8s.io/code-generator v0.31.5

replace k8s.io/component-base => k8s.io/component-base v0.31.5

replace k8s.io/component-helpers => k8s.io/component-helpers v0.31.5

replace k8s.io/controller-manager => k8s.io/controller-manager v0.31.5

replace k8s.io/cri-api => k8s.io/cri-api v0.31.5

replace k8s.io/csi-translation-lib => k8s.io/csi-translation-lib v0.31.5

replace k8s.io/dynamic-resource-allocation => k8s.io/dynamic-resource-allocation v0.31.5

replace k8s.io/endpointslice => k8s.io/endpointslice v0.31.5

replace k8s.io/gengo/v2 => k8s.io/gengo/v2 v2.0.0-20240228010128-51d4e06bde70

replace k8s.io/gengo => k8s.io/gengo v0.0.0-20240826214909-a7b603a56eb7

replace k8s.io/kms => k8s.io/kms v0.31.5

replace k8s.io/kube-aggregator => k8s.io/kube-aggregator v0.31.5

replace k8s.io/kube-controller-manager => k8s.io/kube-controller-manager v0.31.5

replace k8s.io/kube-openapi => k8s.io/kube-openapi v0.0.0-20240228011516-70dd3763d340

replace k8s.io/kube-proxy => k8s.io/kube-proxy v0.31.5

replace k8s.io/kube-scheduler => k8s.io/kube-scheduler v0.31.5

replace k8s.io/kubectl => k8s.io/kubectl v0.31.5

replace k8s.io/kubelet => k8s.io/kubelet v0.31.5

replace k8s.io/kubernetes => k8s.io/kubernetes v1.31.6

replace k8s.io/legacy-cloud-providers => k8s.io/legacy-cloud-providers v0.31.5

replace k8s.io/metrics => k8s.io/metrics v0.31.5

replace k8s.io/mount-utils => k8s.io/mount-utils v0.31.5

replace k8s.io/pod-security-admission => k8s.io/pod-security-admission v0.31.5

replace k8s.io/sample-apiserver => k8s.io/sample-apiserver v0.31.5

replace github.com/upgrade-image-cleanup/upgrade-image-cleanup => ../..
