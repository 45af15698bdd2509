package main

import (
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// The release deploy/ is rendered as: the README's
// `helm install upgrade-image-cleanup deploy/chart/upgrade-image-cleanup -n harvester-system`.
const (
	releaseName      = "upgrade-image-cleanup"
	releaseNamespace = "harvester-system"
)

// chartDir is the chart, relative to the repository's root.
const chartDir = "deploy/chart/upgrade-image-cleanup"

// header opens every generated file.
const header = "# generated from deploy/chart by hack/chart generate; do not edit\n"

// generatedFile is one file of deploy/: the templates it is rendered from,
// with these values over the chart's defaults.
type generatedFile struct {
	path      string   // from the repository's root
	templates []string // under the chart's templates/
	values    map[string]any
}

// generatedFiles are the files generate writes. The CRD is rendered with
// installCRD on; it stays in deploy/crd/, so `kubectl apply -f deploy/`
// never touches it. The removal Jobs' admission policy goes with the RBAC
// it narrows, its parameters' ConfigMap with the Deployment whose flags it
// repeats, so that the plain manifests' image is set in one file.
var generatedFiles = []generatedFile{
	{path: "deploy/deployment.yaml", templates: []string{"deployment.yaml", "removal-job-policy-params.yaml"}},
	{path: "deploy/rbac.yaml", templates: []string{"rbac.yaml", "removal-job-policy.yaml"}},
	{path: "deploy/crd/crd-upgrades.yaml", templates: []string{"crd-upgrades.yaml"}, values: map[string]any{"installCRD": true}},
}

// loadChart reads the chart from the repository at root.
func loadChart(root string) (*chart.Chart, error) {
	return loader.Load(filepath.Join(root, filepath.FromSlash(chartDir)))
}

// render renders every template of ch with vals over its defaults, as
// `helm template` does for deploy/'s release, after checking vals
// against values.schema.json. Strict: a template reading a value that does
// not exist fails instead of printing nothing. The result is keyed by the
// template's name under templates/; partials and NOTES.txt are left out.
func render(ch *chart.Chart, vals map[string]any) (map[string]string, error) {
	top, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	out, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, err
	}
	prefix := ch.Name() + "/templates/"
	manifests := map[string]string{}
	for name, text := range out {
		t, ok := strings.CutPrefix(name, prefix)
		if !ok || strings.HasPrefix(path.Base(t), "_") || t == "NOTES.txt" {
			continue
		}
		manifests[t] = text
	}
	return manifests, nil
}

// generate returns the content of every file of generatedFiles, keyed by
// its path. With the default values, every template not in a file must
// render nothing, so no object of a default install is missing from
// deploy/.
func generate(ch *chart.Chart) (map[string][]byte, error) {
	defaults, err := render(ch, nil)
	if err != nil {
		return nil, fmt.Errorf("render with the default values: %w", err)
	}
	claimed := map[string]bool{}
	files := map[string][]byte{}
	for _, f := range generatedFiles {
		manifests := defaults
		if f.values != nil {
			if manifests, err = render(ch, f.values); err != nil {
				return nil, fmt.Errorf("%s: render with %v: %w", f.path, f.values, err)
			}
		}
		var docs []string
		for _, t := range f.templates {
			claimed[t] = true
			text, ok := manifests[t]
			if !ok {
				return nil, fmt.Errorf("%s: the chart has no template %s", f.path, t)
			}
			if text = strings.TrimSpace(text); text != "" {
				docs = append(docs, "# Source: "+ch.Name()+"/templates/"+t+"\n"+text)
			}
		}
		if len(docs) == 0 {
			return nil, fmt.Errorf("%s: its templates %v render nothing", f.path, f.templates)
		}
		files[f.path] = []byte(header + strings.Join(docs, "\n---\n") + "\n")
	}
	for _, t := range slices.Sorted(maps.Keys(defaults)) {
		if !claimed[t] && strings.TrimSpace(defaults[t]) != "" {
			return nil, fmt.Errorf("templates/%s renders objects with the default values, but no file of deploy/ holds them (generatedFiles in hack/helm/chart.go)", t)
		}
	}
	return files, nil
}
