// Package cleanuptest is the one place for the objects, fakes and "wait
// until" helpers that the tests, the demo, the example host and the
// benchmarks share, as cert-manager's pkg/controller/test and
// sample-controller's fixture are:
//
//   - builders of the objects the controller reads, shaped as Harvester and
//     Kubernetes write them: Upgrade, RepoSlice, Node, RemovalJob, and the
//     pod and status of a finished removal Job (FinishJob); for a real
//     control plane, the repo's Service and Pod (RepoService, RepoPod) and
//     the CRD, namespace and nodes (PrepareCluster);
//   - the image lists: a small pair (PreviousImages, CurrentImages) and the
//     one copy of a realistic pair (Lists, embedded);
//   - Repo, a recording fake of the upgrade repo as the controller's
//     cleanup.ListFetcher, and HTTPRepo, the recording repo server;
//   - Env, fake clientsets, the controller's informers, a fake recorder and
//     a fake clock, with the controller wired over them and helpers that
//     wait on conditions.
//
// Nothing here imports package testing, so programs (the demo, hack/bench)
// use the same builders; every helper returns an error instead of failing a
// test. The thin layer for tests, failing them on those errors, is package
// fixture below this one. A new field on the Upgrade is one edit, here.
package cleanuptest
