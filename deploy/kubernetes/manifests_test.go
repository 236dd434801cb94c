package kubernetes

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// manifestDir holds the manifests; every *.yaml under it, subdirectories
// included, is read.
const manifestDir = "manifests"

// namespace is the one namespace every namespaced object must be in.
const namespace = "belay"

// belayFlags are the flags the manifests may give each belay subcommand:
// those they use. A flag outside its list is an error (a typo, or one that
// the subcommand does not have: the gateway takes no --server, only the
// pooler --node). TestBelayDefinesTheFlags checks that cmd/belay defines
// every one of them.
var belayFlags = map[string][]string{
	"pooler": {"listen", "advertise", "server", "etcd", "cluster", "node", "shard", "node-addr",
		"auth-type", "auth-user", "tls-mode", "tls-cert", "tls-key", "tls-ca", "health-user", "passfile",
		"metrics-listen", "register-ttl"},
	"gateway": {"listen", "advertise", "etcd", "cluster", "auth-type", "auth-file", "server-tls-mode",
		"server-tls-ca-file", "server-tls-cert-file", "server-tls-key-file", "health-user", "passfile",
		"metrics-listen", "register-ttl"},
	"orch": {"etcd", "cluster", "id", "require-poolers", "user", "passfile", "replication-conninfo"},
}

// boolFlags may be given without a value.
var boolFlags = map[string]bool{"require-poolers": true}

// fileFlags name files: each must be a file of a Secret or ConfigMap volume
// mounted in the container.
var fileFlags = map[string]bool{"passfile": true, "auth-file": true, "tls-cert": true, "tls-key": true,
	"tls-ca": true, "server-tls-ca-file": true, "server-tls-cert-file": true, "server-tls-key-file": true}

// requiredFlags must be given to every container running the subcommand.
var requiredFlags = map[string][]string{
	"pooler":  {"etcd", "cluster", "server", "node", "shard", "node-addr", "listen", "advertise"},
	"gateway": {"etcd", "cluster", "listen", "advertise"},
	"orch":    {"etcd", "cluster"},
}

// decoders make the object a document decodes into, by "apiVersion kind".
var decoders = map[string]func() any{
	"v1 Namespace":                  func() any { return new(corev1.Namespace) },
	"v1 Service":                    func() any { return new(corev1.Service) },
	"v1 Secret":                     func() any { return new(corev1.Secret) },
	"v1 ConfigMap":                  func() any { return new(corev1.ConfigMap) },
	"apps/v1 StatefulSet":           func() any { return new(appsv1.StatefulSet) },
	"apps/v1 Deployment":            func() any { return new(appsv1.Deployment) },
	"policy/v1 PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
}

// workload is a StatefulSet or a Deployment.
type workload struct {
	where, kind, name string
	selector          *metav1.LabelSelector
	replicas          *int32
	pod               *corev1.PodTemplateSpec
	claims            []corev1.PersistentVolumeClaim // a StatefulSet's volumeClaimTemplates
	serviceName       string                         // a StatefulSet's
}

func (w *workload) String() string { return w.kind + " " + w.name }

// manifests is what the documents define.
type manifests struct {
	where      map[string]string // "Kind name": file and document
	meta       map[string]*metav1.ObjectMeta
	namespaces map[string]*corev1.Namespace
	services   map[string]*corev1.Service
	secrets    map[string]*corev1.Secret
	configMaps map[string]*corev1.ConfigMap
	pdbs       map[string]*policyv1.PodDisruptionBudget
	workloads  []*workload
}

// separator is a line between two YAML documents.
var separator = regexp.MustCompile(`^---(\s.*)?$`)

// splitDocuments splits a file's text on its --- lines, leaving out the
// documents that hold only comments and blank lines.
func splitDocuments(text string) []string {
	var docs []string
	var cur []string
	flush := func() {
		for _, l := range cur {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, strings.Join(cur, "\n")+"\n")
				break
			}
		}
		cur = nil
	}
	for _, l := range strings.Split(text, "\n") {
		if separator.MatchString(l) {
			flush()
			continue
		}
		cur = append(cur, l)
	}
	flush()
	return docs
}

// load decodes every document of files (name to text), strictly: a field
// the API type does not have is an error, as is a kind not in decoders.
func load(files map[string]string) (*manifests, error) {
	m := &manifests{
		where: map[string]string{}, meta: map[string]*metav1.ObjectMeta{},
		namespaces: map[string]*corev1.Namespace{}, services: map[string]*corev1.Service{},
		secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{},
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(files)) {
		for i, doc := range splitDocuments(files[name]) {
			where := fmt.Sprintf("%s (document %d)", name, i+1)
			if err := m.add(where, doc); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return m, errors.Join(errs...)
}

// add decodes one document.
func (m *manifests) add(where, doc string) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return err
	}
	mk, ok := decoders[tm.APIVersion+" "+tm.Kind]
	if !ok {
		return fmt.Errorf("unknown kind %q of apiVersion %q: the manifests may hold %s",
			tm.Kind, tm.APIVersion, strings.Join(slices.Sorted(maps.Keys(decoders)), ", "))
	}
	obj := mk()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	var meta *metav1.ObjectMeta
	switch o := obj.(type) {
	case *corev1.Namespace:
		meta = &o.ObjectMeta
		m.namespaces[o.Name] = o
	case *corev1.Service:
		meta = &o.ObjectMeta
		m.services[o.Name] = o
	case *corev1.Secret:
		meta = &o.ObjectMeta
		m.secrets[o.Name] = o
	case *corev1.ConfigMap:
		meta = &o.ObjectMeta
		m.configMaps[o.Name] = o
	case *policyv1.PodDisruptionBudget:
		meta = &o.ObjectMeta
		m.pdbs[o.Name] = o
	case *appsv1.StatefulSet:
		meta = &o.ObjectMeta
		m.workloads = append(m.workloads, &workload{where: where, kind: tm.Kind, name: o.Name,
			selector: o.Spec.Selector, replicas: o.Spec.Replicas, pod: &o.Spec.Template,
			claims: o.Spec.VolumeClaimTemplates, serviceName: o.Spec.ServiceName})
	case *appsv1.Deployment:
		meta = &o.ObjectMeta
		m.workloads = append(m.workloads, &workload{where: where, kind: tm.Kind, name: o.Name,
			selector: o.Spec.Selector, replicas: o.Spec.Replicas, pod: &o.Spec.Template})
	}
	id := tm.Kind + " " + meta.Name
	if prev, dup := m.where[id]; dup {
		return fmt.Errorf("%s is defined twice (also in %s)", id, prev)
	}
	m.where[id], m.meta[id] = where, meta
	return nil
}

// readManifests reads every *.yaml under manifestDir.
func readManifests(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(manifestDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(p)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no *.yaml under %s", manifestDir)
	}
	return files
}

// checker collects the errors of check.
type checker struct {
	*manifests
	errs []error
}

func (c *checker) fail(where, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

// check returns every inconsistency of the manifests.
func (m *manifests) check() []error {
	c := &checker{manifests: m}
	c.checkMeta()
	for _, w := range m.workloads {
		c.checkWorkload(w)
	}
	for _, name := range slices.Sorted(maps.Keys(m.services)) {
		c.checkService(m.services[name])
	}
	for _, name := range slices.Sorted(maps.Keys(m.pdbs)) {
		c.checkPDB(m.pdbs[name])
	}
	c.checkPasswords()
	return c.errs
}

// checkMeta checks names, namespaces and labels.
func (c *checker) checkMeta() {
	for _, id := range slices.Sorted(maps.Keys(c.meta)) {
		meta, where := c.meta[id], c.where[id]+": "+id
		kind, _, _ := strings.Cut(id, " ")
		var bad []string
		if kind == "Service" {
			bad = validation.IsDNS1035Label(meta.Name)
		} else {
			bad = validation.IsDNS1123Subdomain(meta.Name)
		}
		if meta.Name == "" || len(bad) > 0 {
			c.fail(where, "invalid name %q: %s", meta.Name, strings.Join(bad, "; "))
		}
		switch {
		case kind == "Namespace":
			if meta.Namespace != "" {
				c.fail(where, "a Namespace has no namespace")
			}
		case meta.Namespace != namespace:
			c.fail(where, "namespace %q, not %q", meta.Namespace, namespace)
		}
		c.checkLabels(where, meta.Labels)
	}
	if c.namespaces[namespace] == nil {
		c.fail(manifestDir, "no Namespace %q", namespace)
	}
}

func (c *checker) checkLabels(where string, l map[string]string) {
	for k, v := range l {
		if bad := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(bad) > 0 {
			c.fail(where, "label %s=%q: %s", k, v, strings.Join(bad, "; "))
		}
	}
}

// selected is the workloads whose pods sel matches.
func (c *checker) selected(sel labels.Selector) []*workload {
	var ws []*workload
	for _, w := range c.workloads {
		if sel.Matches(labels.Set(w.pod.Labels)) {
			ws = append(ws, w)
		}
	}
	return ws
}

func (c *checker) checkWorkload(w *workload) {
	where := w.where + ": " + w.String()
	c.checkLabels(where+" pod template", w.pod.Labels)
	if w.replicas == nil || *w.replicas < 1 {
		c.fail(where, "replicas must be set, at least 1")
	}
	if w.selector == nil || len(w.selector.MatchLabels)+len(w.selector.MatchExpressions) == 0 {
		c.fail(where, "no selector")
	} else if sel, err := metav1.LabelSelectorAsSelector(w.selector); err != nil {
		c.fail(where, "selector: %v", err)
	} else {
		if !sel.Matches(labels.Set(w.pod.Labels)) {
			c.fail(where, "selector %s does not match its pod template's labels %v", sel, w.pod.Labels)
		}
		for _, o := range c.selected(sel) {
			if o != w {
				c.fail(where, "selector %s also matches the pods of %s", sel, o)
			}
		}
	}
	if w.kind == "StatefulSet" {
		svc := c.services[w.serviceName]
		switch {
		case svc == nil:
			c.fail(where, "serviceName %q: no such Service in the manifests", w.serviceName)
		case svc.Spec.ClusterIP != corev1.ClusterIPNone:
			c.fail(where, "serviceName %q: the Service is not headless (clusterIP: None)", w.serviceName)
		case !slices.Contains(c.selected(labels.SelectorFromSet(svc.Spec.Selector)), w):
			c.fail(where, "serviceName %q: the Service does not select its pods", w.serviceName)
		}
	}
	c.checkPod(w, where)
}

func (c *checker) checkService(svc *corev1.Service) {
	where := c.where["Service "+svc.Name] + ": Service " + svc.Name
	if len(svc.Spec.Selector) == 0 {
		c.fail(where, "no selector")
		return
	}
	ws := c.selected(labels.SelectorFromSet(svc.Spec.Selector))
	if len(ws) == 0 {
		c.fail(where, "selector %v selects no workload's pods", svc.Spec.Selector)
	}
	if len(svc.Spec.Ports) == 0 {
		c.fail(where, "no ports")
	}
	for _, p := range svc.Spec.Ports {
		if bad := validation.IsValidPortName(p.Name); p.Name != "" && len(bad) > 0 || p.Name == "" && len(svc.Spec.Ports) > 1 {
			c.fail(where, "port %d: invalid name %q %v", p.Port, p.Name, bad)
		}
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, w := range ws {
			if !hasPort(w.pod.Spec.Containers, target) {
				c.fail(where, "port %d: targetPort %s is no container port of %s's pods", p.Port, target.String(), w)
			}
		}
	}
}

func (c *checker) checkPDB(pdb *policyv1.PodDisruptionBudget) {
	where := c.where["PodDisruptionBudget "+pdb.Name] + ": PodDisruptionBudget " + pdb.Name
	if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
		c.fail(where, "set one of minAvailable and maxUnavailable")
	}
	if pdb.Spec.Selector == nil || len(pdb.Spec.Selector.MatchLabels)+len(pdb.Spec.Selector.MatchExpressions) == 0 {
		c.fail(where, "no selector")
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		c.fail(where, "selector: %v", err)
		return
	}
	if len(c.selected(sel)) == 0 {
		c.fail(where, "selector %s selects no workload's pods", sel)
	}
}

// hasPort says whether one of cs declares port p, by number or name.
func hasPort(cs []corev1.Container, p intstr.IntOrString) bool {
	for _, c := range cs {
		if containerPort(c, p) {
			return true
		}
	}
	return false
}

func containerPort(c corev1.Container, p intstr.IntOrString) bool {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return true
		}
	}
	return false
}

// podFields are the fieldRef paths the Downward API gives environment
// variables.
var podFields = map[string]bool{"metadata.name": true, "metadata.namespace": true, "metadata.uid": true,
	"spec.nodeName": true, "spec.serviceAccountName": true, "status.hostIP": true, "status.hostIPs": true,
	"status.podIP": true, "status.podIPs": true}

// restrictedVolume are the volume types the restricted Pod Security
// Standard allows.
func restrictedVolume(v corev1.Volume) bool {
	s := v.VolumeSource
	return s.ConfigMap != nil || s.Secret != nil || s.EmptyDir != nil || s.PersistentVolumeClaim != nil ||
		s.Projected != nil || s.DownwardAPI != nil || s.CSI != nil || s.Ephemeral != nil
}

// checkPod checks a workload's pod template: volumes, the Secrets and
// ConfigMaps it refers to, ports, probes, environment variables, security
// and resources, and the belay containers' arguments.
func (c *checker) checkPod(w *workload, where string) {
	spec := &w.pod.Spec
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		c.fail(where, "host namespaces are not allowed (restricted)")
	}
	volumes := map[string]*corev1.Volume{}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if volumes[v.Name] != nil {
			c.fail(where, "volume %q defined twice", v.Name)
		}
		volumes[v.Name] = v
		c.checkVolume(where, v)
	}
	claims := map[string]bool{}
	for _, pvc := range w.claims {
		if volumes[pvc.Name] != nil || claims[pvc.Name] {
			c.fail(where, "volumeClaimTemplate %q clashes with another volume", pvc.Name)
		}
		claims[pvc.Name] = true
		if _, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
			c.fail(where, "volumeClaimTemplate %q requests no storage", pvc.Name)
		}
	}
	used := map[string]bool{}
	containers := slices.Concat(spec.InitContainers, spec.Containers)
	names, ports := map[string]bool{}, map[string]bool{}
	for i := range containers {
		ct := &containers[i]
		cw := fmt.Sprintf("%s container %s", where, ct.Name)
		if bad := validation.IsDNS1123Label(ct.Name); len(bad) > 0 || names[ct.Name] {
			c.fail(cw, "invalid or repeated container name %v", bad)
		}
		names[ct.Name] = true
		for _, p := range ct.Ports {
			if bad := validation.IsValidPortName(p.Name); p.Name != "" && (len(bad) > 0 || ports[p.Name]) {
				c.fail(cw, "port %d: invalid or repeated name %q %v", p.ContainerPort, p.Name, bad)
			}
			ports[p.Name] = true
		}
		mounts := map[string]bool{}
		for _, vm := range ct.VolumeMounts {
			if volumes[vm.Name] == nil && !claims[vm.Name] {
				c.fail(cw, "volumeMount %s: no volume %q in the pod nor volumeClaimTemplate", vm.MountPath, vm.Name)
			}
			if mounts[vm.MountPath] {
				c.fail(cw, "two volumes mounted at %s", vm.MountPath)
			}
			used[vm.Name], mounts[vm.MountPath] = true, true
		}
		env := c.checkEnv(cw, ct)
		for _, s := range slices.Concat(ct.Command, ct.Args) {
			for _, ref := range varRefs(s) {
				if !env[ref] {
					c.fail(cw, "$(%s) in its command or args: no such environment variable", ref)
				}
			}
		}
		for kind, p := range map[string]*corev1.Probe{"liveness": ct.LivenessProbe, "readiness": ct.ReadinessProbe, "startup": ct.StartupProbe} {
			c.checkProbe(cw, kind, *ct, p)
		}
		if ct.Image == "" || !strings.ContainsAny(path.Base(ct.Image), ":@") {
			c.fail(cw, "image %q has no tag", ct.Image)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := ct.Resources.Requests[r]; !ok {
				c.fail(cw, "no %s request", r)
			}
			if _, ok := ct.Resources.Limits[r]; !ok {
				c.fail(cw, "no %s limit", r)
			}
		}
		c.checkSecurity(cw, spec.SecurityContext, ct.SecurityContext)
		if isBelay(ct.Image) {
			c.checkBelay(w, cw, ct, volumes)
		}
		if w.kind == "StatefulSet" {
			for _, e := range ct.Env {
				if e.Name == "REPLICAS" && w.replicas != nil && e.Value != strconv.Itoa(int(*w.replicas)) {
					c.fail(cw, "REPLICAS=%q but the StatefulSet has %d replicas", e.Value, *w.replicas)
				}
				if e.Name == "SERVICE" && e.Value != w.serviceName {
					c.fail(cw, "SERVICE=%q but the StatefulSet's serviceName is %q", e.Value, w.serviceName)
				}
			}
		}
	}
	for name := range volumes {
		if !used[name] {
			c.fail(where, "volume %q is mounted by no container", name)
		}
	}
	for name := range claims {
		if !used[name] {
			c.fail(where, "volumeClaimTemplate %q is mounted by no container", name)
		}
	}
}

// checkVolume checks that a volume is of an allowed type and that the
// Secret or ConfigMap it projects exists, with the keys it names.
func (c *checker) checkVolume(where string, v *corev1.Volume) {
	if !restrictedVolume(*v) {
		c.fail(where, "volume %q: its type is not allowed (restricted)", v.Name)
	}
	if s := v.Secret; s != nil {
		c.checkItems(where+" volume "+v.Name, "Secret", s.SecretName, s.Optional, s.Items)
	}
	if cm := v.ConfigMap; cm != nil {
		c.checkItems(where+" volume "+v.Name, "ConfigMap", cm.Name, cm.Optional, cm.Items)
	}
	if p := v.Projected; p != nil {
		for _, src := range p.Sources {
			if s := src.Secret; s != nil {
				c.checkItems(where+" volume "+v.Name, "Secret", s.Name, s.Optional, s.Items)
			}
			if cm := src.ConfigMap; cm != nil {
				c.checkItems(where+" volume "+v.Name, "ConfigMap", cm.Name, cm.Optional, cm.Items)
			}
		}
	}
}

func (c *checker) checkItems(where, kind, name string, optional *bool, items []corev1.KeyToPath) {
	keys, ok := c.keys(kind, name)
	if !ok {
		if optional == nil || !*optional {
			c.fail(where, "%s %q: not defined in the manifests", kind, name)
		}
		return
	}
	for _, it := range items {
		if !keys[it.Key] {
			c.fail(where, "%s %q has no key %q", kind, name, it.Key)
		}
	}
}

// keys is the keys of a Secret or ConfigMap, and whether it is defined.
func (c *checker) keys(kind, name string) (map[string]bool, bool) {
	keys := map[string]bool{}
	switch kind {
	case "Secret":
		s := c.secrets[name]
		if s == nil {
			return nil, false
		}
		for k := range s.Data {
			keys[k] = true
		}
		for k := range s.StringData {
			keys[k] = true
		}
	case "ConfigMap":
		cm := c.configMaps[name]
		if cm == nil {
			return nil, false
		}
		for k := range cm.Data {
			keys[k] = true
		}
		for k := range cm.BinaryData {
			keys[k] = true
		}
	}
	return keys, true
}

// checkEnv checks a container's environment and returns the names it
// defines.
func (c *checker) checkEnv(where string, ct *corev1.Container) map[string]bool {
	env := map[string]bool{}
	for _, e := range ct.Env {
		if bad := validation.IsEnvVarName(e.Name); len(bad) > 0 || env[e.Name] {
			c.fail(where, "invalid or repeated environment variable %q %v", e.Name, bad)
		}
		for _, ref := range varRefs(e.Value) {
			if !env[ref] {
				c.fail(where, "%s refers to $(%s), not defined before it", e.Name, ref)
			}
		}
		env[e.Name] = true
		if e.ValueFrom == nil {
			continue
		}
		if r := e.ValueFrom.SecretKeyRef; r != nil {
			c.checkKeyRef(where+" env "+e.Name, "Secret", r.Name, r.Key, r.Optional)
		}
		if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
			c.checkKeyRef(where+" env "+e.Name, "ConfigMap", r.Name, r.Key, r.Optional)
		}
		if r := e.ValueFrom.FieldRef; r != nil && !podFields[r.FieldPath] &&
			!strings.HasPrefix(r.FieldPath, "metadata.labels[") && !strings.HasPrefix(r.FieldPath, "metadata.annotations[") {
			c.fail(where, "env %s: fieldRef %q is not a Downward API field", e.Name, r.FieldPath)
		}
	}
	for _, ef := range ct.EnvFrom {
		if r := ef.SecretRef; r != nil {
			c.checkItems(where+" envFrom", "Secret", r.Name, r.Optional, nil)
		}
		if r := ef.ConfigMapRef; r != nil {
			c.checkItems(where+" envFrom", "ConfigMap", r.Name, r.Optional, nil)
		}
	}
	return env
}

func (c *checker) checkKeyRef(where, kind, name, key string, optional *bool) {
	c.checkItems(where, kind, name, optional, []corev1.KeyToPath{{Key: key}})
}

// varRefs is the $(NAME) references of s that Kubernetes expands ($$ is
// an escaped $).
func varRefs(s string) []string {
	var refs []string
	for i := 0; i < len(s)-1; i++ {
		if s[i] != '$' {
			continue
		}
		if s[i+1] == '$' {
			i++
			continue
		}
		if s[i+1] != '(' {
			continue
		}
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			break
		}
		refs = append(refs, s[i+2:i+end])
		i += end
	}
	return refs
}

func (c *checker) checkProbe(where, kind string, ct corev1.Container, p *corev1.Probe) {
	if p == nil {
		return
	}
	var port *intstr.IntOrString
	switch h := p.ProbeHandler; {
	case h.HTTPGet != nil:
		port = &h.HTTPGet.Port
	case h.TCPSocket != nil:
		port = &h.TCPSocket.Port
	case h.GRPC != nil:
		v := intstr.FromInt32(h.GRPC.Port)
		port = &v
	case h.Exec != nil:
		if len(h.Exec.Command) == 0 {
			c.fail(where, "%s probe: empty command", kind)
		}
	default:
		c.fail(where, "%s probe: no handler", kind)
	}
	if port != nil && !containerPort(ct, *port) {
		c.fail(where, "%s probe: port %s is not one of its container's", kind, port.String())
	}
}

// checkSecurity checks that the container runs as the restricted Pod
// Security Standard requires, and more: as an explicit non-root user, on a
// read-only root filesystem.
func (c *checker) checkSecurity(where string, pod *corev1.PodSecurityContext, sc *corev1.SecurityContext) {
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot, user, seccomp := pod.RunAsNonRoot, pod.RunAsUser, pod.SeccompProfile
	if sc.RunAsNonRoot != nil {
		nonRoot = sc.RunAsNonRoot
	}
	if sc.RunAsUser != nil {
		user = sc.RunAsUser
	}
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if nonRoot == nil || !*nonRoot {
		c.fail(where, "runAsNonRoot is not true (pod or container securityContext)")
	}
	if user == nil || *user == 0 {
		c.fail(where, "runs as root, or as the image's user: give a non-zero runAsUser")
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost {
		c.fail(where, "no RuntimeDefault or Localhost seccompProfile")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.fail(where, "allowPrivilegeEscalation is not false")
	}
	if sc.Privileged != nil && *sc.Privileged {
		c.fail(where, "privileged")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		c.fail(where, "readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		c.fail(where, "capabilities do not drop ALL")
	} else if len(sc.Capabilities.Add) > 0 {
		c.fail(where, "capabilities added: %v", sc.Capabilities.Add)
	}
}

// isBelay says whether an image is belay's.
func isBelay(image string) bool {
	name := path.Base(image)
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name == "belay"
}

// checkBelay checks a belay container's command line: a subcommand the
// manifests may run, the flags it may take and must, and that what the
// flags name exists: the files (mounted from a Secret or ConfigMap, with
// the key), the etcd Service and the ports.
func (c *checker) checkBelay(w *workload, where string, ct *corev1.Container, volumes map[string]*corev1.Volume) {
	if len(ct.Command) > 0 && !slices.Equal(ct.Command, []string{"/belay"}) {
		c.fail(where, "command %q: leave it to the image's entrypoint (/belay)", ct.Command)
	}
	if len(ct.Args) == 0 {
		c.fail(where, "no args: the first must be a belay subcommand")
		return
	}
	sub := ct.Args[0]
	allowed, ok := belayFlags[sub]
	if !ok {
		c.fail(where, "args start with %q, not a belay subcommand among %s", sub, strings.Join(slices.Sorted(maps.Keys(belayFlags)), ", "))
		return
	}
	flags := map[string]string{}
	for _, a := range ct.Args[1:] {
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch {
		case !strings.HasPrefix(a, "--"):
			c.fail(where, "argument %q: write each flag --name=value", a)
			continue
		case !slices.Contains(allowed, name):
			c.fail(where, "flag --%s: not one of belay %s's flags here (%s)", name, sub, strings.Join(allowed, ", "))
		case !hasValue && !boolFlags[name]:
			c.fail(where, "flag --%s: write it --%s=value", name, name)
		}
		if _, dup := flags[name]; dup {
			c.fail(where, "flag --%s given twice", name)
		}
		flags[name] = value
	}
	for _, name := range requiredFlags[sub] {
		if _, ok := flags[name]; !ok {
			c.fail(where, "belay %s needs --%s", sub, name)
		}
	}
	if _, ok := flags["server"]; ok && sub == "gateway" {
		c.fail(where, "belay gateway takes no --server: it reaches the nodes through their poolers")
	}
	for _, name := range slices.Sorted(maps.Keys(flags)) {
		if fileFlags[name] {
			c.checkFile(where, "--"+name, flags[name], ct, volumes)
		}
	}
	for _, ep := range strings.Split(flags["etcd"], ",") {
		c.checkEtcd(where, ep)
	}
	siblings := slices.DeleteFunc(slices.Clone(w.pod.Spec.Containers), func(o corev1.Container) bool { return o.Name == ct.Name })
	var listenPort string
	if l, ok := flags["listen"]; ok {
		host, port, err := net.SplitHostPort(l)
		listenPort = port
		if err != nil || !c.declares(*ct, port) {
			c.fail(where, "--listen=%s: its port is not one of the container's", l)
		}
		if ip := net.ParseIP(host); (host == "" || ip != nil && ip.IsUnspecified()) && flags["advertise"] == "" {
			c.fail(where, "--listen=%s is a wildcard: belay %s needs --advertise", l, sub)
		}
	}
	if m, ok := flags["metrics-listen"]; ok {
		if _, port, err := net.SplitHostPort(m); err != nil || !c.declares(*ct, port) {
			c.fail(where, "--metrics-listen=%s: its port is not one of the container's", m)
		}
	}
	if a, ok := flags["advertise"]; ok {
		_, port, err := net.SplitHostPort(a)
		if err != nil || port != listenPort {
			c.fail(where, "--advertise=%s: not the --listen port %s", a, listenPort)
		}
		c.checkPodAddr(w, where, "--advertise", a)
	}
	if s, ok := flags["server"]; ok {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host != "127.0.0.1" && host != "localhost" || !hasPort(siblings, intstr.Parse(port)) {
			c.fail(where, "--server=%s: not a port of a container beside it in the pod", s)
		}
	}
	if a, ok := flags["node-addr"]; ok {
		if _, port, err := net.SplitHostPort(a); err != nil || !hasPort(siblings, intstr.Parse(port)) {
			c.fail(where, "--node-addr=%s: not a port of a container beside it in the pod", a)
		}
		c.checkPodAddr(w, where, "--node-addr", a)
	}
	if ci, ok := flags["replication-conninfo"]; ok {
		c.checkReplicationConninfo(where, ci)
	}
}

// declares says whether the container declares port (a number).
func (c *checker) declares(ct corev1.Container, port string) bool {
	return containerPort(ct, intstr.Parse(port))
}

// checkFile checks that file is in a Secret or ConfigMap volume mounted
// in the container, with a key (or item) of that name.
func (c *checker) checkFile(where, flag, file string, ct *corev1.Container, volumes map[string]*corev1.Volume) {
	dir, base := path.Split(file)
	dir = strings.TrimSuffix(dir, "/")
	for _, vm := range ct.VolumeMounts {
		if vm.MountPath != dir {
			continue
		}
		v := volumes[vm.Name]
		var kind, name string
		var items []corev1.KeyToPath
		switch {
		case v == nil:
		case v.Secret != nil:
			kind, name, items = "Secret", v.Secret.SecretName, v.Secret.Items
		case v.ConfigMap != nil:
			kind, name, items = "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items
		}
		if kind == "" {
			c.fail(where, "%s=%s: volume %q at %s is not a Secret or ConfigMap", flag, file, vm.Name, dir)
			return
		}
		files, _ := c.keys(kind, name)
		if len(items) > 0 {
			files = map[string]bool{}
			for _, it := range items {
				files[it.Path] = true
			}
		}
		if !files[base] {
			c.fail(where, "%s=%s: %s %q mounted at %s has no file %q", flag, file, kind, name, dir, base)
		}
		return
	}
	c.fail(where, "%s=%s: no volume is mounted at %s", flag, file, dir)
}

// checkEtcd checks that an etcd endpoint is a Service of the manifests,
// on one of its ports.
func (c *checker) checkEtcd(where, ep string) {
	u, err := url.Parse(ep)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Port() == "" {
		c.fail(where, "--etcd endpoint %q: not http(s)://HOST:PORT", ep)
		return
	}
	parts := strings.Split(u.Hostname(), ".")
	svc := c.services[parts[0]]
	if svc == nil {
		c.fail(where, "--etcd endpoint %q: no Service %q in the manifests", ep, parts[0])
		return
	}
	if len(parts) > 1 && parts[1] != namespace {
		c.fail(where, "--etcd endpoint %q: not in namespace %q", ep, namespace)
	}
	for _, p := range svc.Spec.Ports {
		if strconv.Itoa(int(p.Port)) == u.Port() {
			return
		}
	}
	c.fail(where, "--etcd endpoint %q: Service %s has no port %s", ep, svc.Name, u.Port())
}

// checkPodAddr checks an address a pod registers itself under: its IP,
// or its stable name under its StatefulSet's headless Service,
// $(POD_NAME).SERVICE.$(POD_NAMESPACE).svc, which must publish the port.
func (c *checker) checkPodAddr(w *workload, where, flag, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.fail(where, "%s=%s: %v", flag, addr, err)
		return
	}
	if host == "$(POD_IP)" {
		return
	}
	parts := strings.Split(host, ".")
	if len(parts) < 4 || parts[0] != "$(POD_NAME)" || parts[2] != "$(POD_NAMESPACE)" || parts[3] != "svc" {
		c.fail(where, "%s=%s: give $(POD_IP) or $(POD_NAME).SERVICE.$(POD_NAMESPACE).svc", flag, addr)
		return
	}
	if w.kind != "StatefulSet" || parts[1] != w.serviceName {
		c.fail(where, "%s=%s: %q is not the StatefulSet's serviceName %q", flag, addr, parts[1], w.serviceName)
		return
	}
	if svc := c.services[parts[1]]; svc != nil {
		for _, p := range svc.Spec.Ports {
			if strconv.Itoa(int(p.Port)) == port {
				return
			}
		}
		c.fail(where, "%s=%s: Service %s publishes no port %s", flag, addr, parts[1], port)
	}
}

// checkReplicationConninfo checks the orchestrator's
// --replication-conninfo: a passfile it names is read by the Postgres
// servers (their walreceivers), so it must be mounted in every postgres
// container.
func (c *checker) checkReplicationConninfo(where, ci string) {
	for _, kv := range strings.Fields(ci) {
		k, v, _ := strings.Cut(kv, "=")
		if k != "passfile" {
			continue
		}
		found := 0
		for _, w := range c.workloads {
			for _, ct := range w.pod.Spec.Containers {
				if ct.Name != "postgres" {
					continue
				}
				found++
				if !slices.ContainsFunc(ct.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == path.Dir(v) }) {
					c.fail(where, "--replication-conninfo passfile=%s: %s's postgres container mounts nothing at %s", v, w, path.Dir(v))
				}
			}
		}
		if found == 0 {
			c.fail(where, "--replication-conninfo passfile=%s: no postgres container", v)
		}
	}
}

// checkPasswords checks that the Secrets agree on the postgres user's
// password: the postgres image's, the password file's and the userlist's.
func (c *checker) checkPasswords() {
	pg, auth := c.secrets["belay-postgres"], c.secrets["belay-auth"]
	if pg == nil || auth == nil {
		return
	}
	want := pg.StringData["password"]
	for _, line := range strings.Split(auth.StringData["pgpass"], "\n") {
		if f := strings.Split(line, ":"); len(f) == 5 && f[3] == "postgres" && f[4] != want {
			c.fail(c.where["Secret belay-auth"], "pgpass: the postgres password is not belay-postgres's")
		}
	}
	for _, line := range strings.Split(auth.StringData["userlist.txt"], "\n") {
		if strings.HasPrefix(line, `"postgres" `) && line != `"postgres" "`+want+`"` {
			c.fail(c.where["Secret belay-auth"], "userlist.txt: the postgres password is not belay-postgres's")
		}
	}
}

// TestManifests decodes every manifest strictly and checks their
// cross-references.
func TestManifests(t *testing.T) {
	files := readManifests(t)
	m, err := load(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range m.check() {
		t.Error(err)
	}
	// What the deployment is made of, so that a file left out shows.
	want := []string{
		"Namespace belay", "Secret belay-auth", "Secret belay-postgres", "Secret belay-tls",
		"Service etcd", "Service etcd-headless", "StatefulSet etcd", "PodDisruptionBudget etcd",
		"Service pg-shard0", "ConfigMap pg-shard0-scripts", "StatefulSet pg-shard0", "PodDisruptionBudget pg-shard0",
		"Service belay", "Deployment belay-gateway", "PodDisruptionBudget belay-gateway",
		"Deployment belay-orch", "PodDisruptionBudget belay-orch",
	}
	if got := slices.Sorted(maps.Keys(m.where)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("objects:\n got %q\nwant %q", got, slices.Sorted(slices.Values(want)))
	}
	t.Logf("%d files, %d objects, %d workloads checked", len(files), len(m.where), len(m.workloads))
}

// brokenDeployment misspells replicas.
const brokenDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
  namespace: belay
spec:
  replica: 2
  selector:
    matchLabels:
      app: broken
  template:
    metadata:
      labels:
        app: broken
    spec:
      containers:
        - name: c
          image: example:1
`

// TestStrictDecodingRejectsUnknownField: a misspelled field is an error,
// not a field silently dropped (replicas would be 1).
func TestStrictDecodingRejectsUnknownField(t *testing.T) {
	_, err := load(map[string]string{"broken.yaml": brokenDeployment})
	if err == nil || !strings.Contains(err.Error(), `unknown field "replica"`) {
		t.Fatalf("err = %v, want an unknown field replica", err)
	}
	m, err := load(map[string]string{"fixed.yaml": strings.Replace(brokenDeployment, "replica:", "replicas:", 1)})
	if err != nil {
		t.Fatalf("the fixed Deployment: %v", err)
	}
	if w := m.workloads[0]; w.replicas == nil || *w.replicas != 2 {
		t.Fatalf("replicas = %v, want 2", w.replicas)
	}
}

// TestUnknownKindRejected: a kind the test cannot decode is an error.
func TestUnknownKindRejected(t *testing.T) {
	_, err := load(map[string]string{"x.yaml": "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: x\n"})
	if err == nil || !strings.Contains(err.Error(), `unknown kind "Ingress"`) {
		t.Fatalf("err = %v, want an unknown kind", err)
	}
}

// stray selects nothing: a Service and a PodDisruptionBudget whose
// selectors match no pod of the manifests.
const stray = `apiVersion: v1
kind: Service
metadata:
  name: stray
  namespace: belay
spec:
  selector:
    app.kubernetes.io/name: belay-gateways
  ports:
    - port: 5432
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: stray
  namespace: belay
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: belay-gateways
`

// TestSelectorMatchingNothing: added to the real manifests (which pass),
// a Service and a PodDisruptionBudget that select nothing are the only
// errors.
func TestSelectorMatchingNothing(t *testing.T) {
	files := readManifests(t)
	files["stray.yaml"] = stray
	m, err := load(files)
	if err != nil {
		t.Fatal(err)
	}
	errs := m.check()
	if len(errs) != 2 {
		t.Fatalf("errors: %v, want the 2 of stray.yaml", errs)
	}
	for _, err := range errs {
		if !strings.Contains(err.Error(), "stray.yaml") || !strings.Contains(err.Error(), "selects no workload's pods") {
			t.Errorf("error %v, want stray.yaml's selector selecting nothing", err)
		}
	}
}

// TestBrokenManifestsAreCaught breaks the real manifests one way at a
// time and expects the break found.
func TestBrokenManifestsAreCaught(t *testing.T) {
	const (
		pg      = manifestDir + "/30-pg-shard0.yaml"
		gateway = manifestDir + "/40-gateway.yaml"
		orch    = manifestDir + "/50-orch.yaml"
		etcd    = manifestDir + "/20-etcd.yaml"
	)
	for _, tc := range []struct{ file, old, new, want string }{
		{gateway, "  replicas: 2\n", "  replica: 2\n", `unknown field "replica"`},
		{gateway, "      app.kubernetes.io/name: belay-gateway\n      app.kubernetes.io/part-of: belay\n  template:",
			"      app.kubernetes.io/name: belay-gw\n      app.kubernetes.io/part-of: belay\n  template:", "does not match its pod template"},
		{gateway, "targetPort: postgres", "targetPort: postgress", "targetPort postgress"},
		{gateway, "secretName: belay-auth", "secretName: belay-auht", `Secret "belay-auht": not defined`},
		{gateway, "key: userlist.txt", "key: users.txt", `no key "users.txt"`},
		{gateway, "port: metrics", "port: metric", "probe: port metric"},
		{gateway, "--listen=0.0.0.0:5432\n", "--listen=0.0.0.0:5432\n            - --server=127.0.0.1:5432\n", "takes no --server"},
		{gateway, "$(POD_IP)", "$(POD_IPS)", "$(POD_IPS)"},
		{gateway, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", "allowPrivilegeEscalation"},
		{gateway, "- gateway\n", "- gatway\n", `"gatway", not a belay subcommand`},
		{pg, "key: password", "key: passwd", `no key "passwd"`},
		{pg, "serviceName: pg-shard0", "serviceName: pg-shard", `serviceName "pg-shard"`},
		{pg, "clusterIP: None", "clusterIP: 10.0.0.10", "not headless"},
		{pg, "--register-ttl=2", "--register-tll=2", "--register-tll"},
		{pg, "            - --node=$(POD_NAME)\n", "", "needs --node"},
		{pg, "--node-addr=$(POD_NAME).pg-shard0.", "--node-addr=$(POD_NAME).pg-shard1.", `"pg-shard1" is not the StatefulSet's serviceName`},
		{pg, "--server=127.0.0.1:5432", "--server=127.0.0.1:5433", "--server=127.0.0.1:5433"},
		{pg, `value: "3"`, `value: "2"`, "REPLICAS"},
		{pg, "name: pg-shard0-scripts\n            items:\n              - key: clone.sh", "name: pg-shard0-scripts\n            items:\n              - key: clone", `no key "clone"`},
		{orch, "mountPath: /secrets", "mountPath: /secret", "no volume is mounted at /secrets"},
		{orch, "--passfile=/secrets/pgpass", "--passfile=/secrets/pgpas", `has no file "pgpas"`},
		{orch, "--etcd=http://etcd:2379", "--etcd=http://etcd-client:2379", `no Service "etcd-client"`},
		{orch, "passfile=/pgpass/pgpass", "passfile=/pgpas/pgpass", "mounts nothing at /pgpas"},
		{orch, "runAsUser: 65532\n            runAsGroup", "runAsUser: 0\n            runAsGroup", "runs as root"},
		{etcd, "- name: data\n              mountPath: /var/run/etcd", "- name: etcd-data\n              mountPath: /var/run/etcd", `no volume "etcd-data"`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			files := readManifests(t)
			if !strings.Contains(files[tc.file], tc.old) {
				t.Fatalf("%s has no %q to break", tc.file, tc.old)
			}
			files[tc.file] = strings.Replace(files[tc.file], tc.old, tc.new, 1)
			m, err := load(files)
			var all []string
			if err != nil {
				all = append(all, err.Error())
			} else {
				for _, err := range m.check() {
					all = append(all, err.Error())
				}
			}
			if !strings.Contains(strings.Join(all, "\n"), tc.want) {
				t.Errorf("%s with %q for %q: errors %q, want one about %q", tc.file, tc.new, tc.old, all, tc.want)
			}
		})
	}
}

// flagMethods are the flag.FlagSet methods (and flag package functions)
// that define a flag, and the index of the flag's name among their
// arguments.
var flagMethods = map[string]int{
	"String": 0, "Int": 0, "Int64": 0, "Uint": 0, "Uint64": 0, "Bool": 0, "Duration": 0, "Float64": 0,
	"Func": 0, "BoolFunc": 0, "Var": 1, "StringVar": 1, "IntVar": 1, "Int64Var": 1, "UintVar": 1,
	"Uint64Var": 1, "BoolVar": 1, "DurationVar": 1, "Float64Var": 1, "TextVar": 1,
}

// TestBelayDefinesTheFlags checks that every flag belayFlags lets the
// manifests use is defined in cmd/belay's source (building belay, with
// cgo, to run `belay SUBCOMMAND -h` would take minutes).
func TestBelayDefinesTheFlags(t *testing.T) {
	dir := filepath.Join("..", "..", "cmd", "belay")
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	defined := map[string]bool{}
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		// A file being edited may not parse: what did parse still counts.
		f, _ := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if f == nil {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			i, ok := flagMethods[sel.Sel.Name]
			if !ok || len(call.Args) <= i {
				return true
			}
			if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if name, err := strconv.Unquote(lit.Value); err == nil {
					defined[name] = true
				}
			}
			return true
		})
	}
	for _, sub := range slices.Sorted(maps.Keys(belayFlags)) {
		for _, name := range belayFlags[sub] {
			if !defined[name] {
				t.Errorf("belay %s --%s: cmd/belay defines no such flag", sub, name)
			}
		}
	}
}
