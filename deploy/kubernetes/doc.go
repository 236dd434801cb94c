// Package kubernetes holds belay's Kubernetes deployment (issue I): the
// Dockerfile of belay's image, the manifests under manifests/ (etcd, a
// Postgres shard with a belay pooler beside each node, the gateways and
// their Service, the orchestrators, the Secrets they read) and README.md on
// building, applying and scaling them.
//
// Its Go code is a test only, which needs no cluster: it decodes every
// manifest strictly into the Kubernetes API types (a misspelled field is an
// error) and checks what kubectl would not: that selectors, Services, ports,
// probes, volumes, Secrets, ConfigMaps and the belay flags the containers
// are given all refer to things that exist, and that every pod meets the
// restricted Pod Security Standard its namespace enforces.
package kubernetes
