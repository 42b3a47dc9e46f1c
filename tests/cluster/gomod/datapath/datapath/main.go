// Command datapath proves, with Istio's own code, whether an HTTPS request to
// the ingress gateway reaches kms-api. It reads the live objects from the test
// cluster, renders the Envoy configuration Istio's control plane would push to
// the gateway pod (pilot/test/xds, the generator istiod runs), replays each
// request through Istio's traffic simulation (pilot/pkg/simulation), resolves
// every certificate the matched listener and cluster name to the secret or
// mounted file it would come from (Istio's own resource-name parsers), and
// then makes the two TLS handshakes for real: a client trusting the issuer
// against the gateway's certificate, and a client configured like Envoy's
// upstream TLS context against the certificate kms-api really serves.
//
//	datapath --kubeconfig FILE --kms-namespace NS --gateway-namespace NS \
//	         --host HOST [--host HOST...] [--path /kms/api/v1/keys]
//
// Prints one JSON document; exits 0 when every request reaches kms-api with
// both handshakes succeeding, 1 when one does not, 2 on bad usage.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	kubecreds "istio.io/istio/pilot/pkg/credentials/kube"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/model/credentials"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/cluster"
	"istio.io/istio/pkg/config"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/security"
	"istio.io/istio/pkg/test"
)

const domain = "cluster.local"

type hostList []string

func (h *hostList) String() string     { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error { *h = append(*h, v); return nil }

// Report is the JSON the Rust tests read.
type Report struct {
	OK          bool      `json:"ok"`
	GatewayPods []string  `json:"gateway_pods"`
	Proxy       string    `json:"proxy,omitempty"`
	Requests    []Request `json:"requests"`
	Error       string    `json:"error,omitempty"`
}

type Request struct {
	Host         string   `json:"host"`
	Path         string   `json:"path"`
	Reaches      bool     `json:"reaches"`
	Error        string   `json:"error,omitempty"`
	Listener     string   `json:"listener,omitempty"`
	FilterChain  string   `json:"filter_chain,omitempty"`
	Route        string   `json:"route,omitempty"`
	Rewrite      string   `json:"rewrite,omitempty"`
	UpstreamPath string   `json:"upstream_path,omitempty"`
	Cluster      string   `json:"cluster,omitempty"`
	ClusterFound bool     `json:"cluster_found"`
	Downstream   *TLSLeg  `json:"downstream,omitempty"`
	Upstream     *TLSLeg  `json:"upstream,omitempty"`
	Problems     []string `json:"problems,omitempty"`
}

// TLSLeg is one TLS hop: where its trust or certificate comes from, what is
// sent and checked, and how the real handshake went.
type TLSLeg struct {
	CertificateSource string   `json:"certificate_source,omitempty"`
	SourceExists      bool     `json:"source_exists"`
	SourceError       string   `json:"source_error,omitempty"`
	Trust             string   `json:"trust,omitempty"`
	SNI               string   `json:"sni,omitempty"`
	VerifyNames       []string `json:"verify_names,omitempty"`
	Handshake         string   `json:"handshake"`
}

type live struct {
	kube    kubernetes.Interface
	dynamic dynamic.Interface
}

func main() {
	var kubeconfig, kmsNamespace, gatewayNamespace, requestPath string
	var hosts hostList
	flag.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster")
	flag.StringVar(&kmsNamespace, "kms-namespace", "kube-system", "namespace of kms-api and the Istio objects")
	flag.StringVar(&gatewayNamespace, "gateway-namespace", "istio-system", "namespace of the gateway pods")
	flag.StringVar(&requestPath, "path", "/kms/api/v1/keys", "request path")
	flag.Var(&hosts, "host", "host the request is sent to (repeat)")
	flag.Parse()
	if kubeconfig == "" || len(hosts) == 0 {
		fmt.Fprintln(os.Stderr, "usage: datapath --kubeconfig FILE --host HOST [--host HOST...]")
		os.Exit(2)
	}
	// The generator's controllers log every step; the report is the output.
	for _, scope := range istiolog.Scopes() {
		scope.SetOutputLevel(istiolog.NoneLevel)
	}
	report := Report{}
	var err error
	wrapErr := test.Wrap(func(t test.Failer) {
		report, err = verify(t, kubeconfig, kmsNamespace, gatewayNamespace, requestPath, hosts)
	})
	if err == nil {
		err = wrapErr
	}
	if err != nil {
		report.Error = err.Error()
		report.OK = false
	}
	out, _ := json.MarshalIndent(report, "", "  ")
	fmt.Println(string(out))
	if !report.OK {
		os.Exit(1)
	}
}

func connect(kubeconfig string) (*live, error) {
	rest, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rest)
	if err != nil {
		return nil, err
	}
	return &live{kube: kube, dynamic: dyn}, nil
}

// istioConfigs reads the Gateways, VirtualServices and DestinationRules of
// the namespaces and parses them as Istio does, with the cluster's domain set
// so that a short host like `kms-api` is qualified within its namespace.
func (c *live) istioConfigs(ctx context.Context, namespaces []string) ([]config.Config, error) {
	var docs []string
	for _, ns := range namespaces {
		for _, resource := range []string{"gateways", "virtualservices", "destinationrules"} {
			gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1alpha3", Resource: resource}
			list, err := c.dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("list %s in %s: %w", resource, ns, err)
			}
			for _, item := range list.Items {
				object := item.Object
				object["apiVersion"] = "networking.istio.io/v1alpha3"
				delete(object, "status")
				meta := object["metadata"].(map[string]any)
				object["metadata"] = map[string]any{
					"name": meta["name"], "namespace": meta["namespace"],
					"labels": meta["labels"], "annotations": meta["annotations"],
				}
				text, err := yaml.Marshal(object)
				if err != nil {
					return nil, err
				}
				docs = append(docs, string(text))
			}
		}
	}
	configs, _, err := crd.ParseInputs(strings.Join(docs, "\n---\n"))
	if err != nil {
		return nil, fmt.Errorf("Istio refuses the objects: %w", err)
	}
	for i := range configs {
		configs[i].Domain = domain
	}
	return configs, nil
}

func podReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" || pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func verify(t test.Failer, kubeconfig, kmsNamespace, gatewayNamespace, requestPath string, hosts []string) (Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	report := Report{}
	c, err := connect(kubeconfig)
	if err != nil {
		return report, err
	}
	namespaces := []string{kmsNamespace}
	if gatewayNamespace != kmsNamespace {
		namespaces = append(namespaces, gatewayNamespace)
	}
	configs, err := c.istioConfigs(ctx, namespaces)
	if err != nil {
		return report, err
	}
	var objects []runtime.Object
	var pods []corev1.Pod
	for _, ns := range namespaces {
		services, err := c.kube.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return report, err
		}
		for i := range services.Items {
			s := services.Items[i]
			s.ManagedFields = nil
			objects = append(objects, &s)
		}
		list, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return report, err
		}
		for i := range list.Items {
			p := list.Items[i]
			p.ManagedFields = nil
			if podReady(&p) {
				pods = append(pods, p)
				objects = append(objects, &p)
			}
		}
	}

	// The gateway pods: ready pods matched by the selector of a Gateway.
	var gatewayPods []corev1.Pod
	for _, cfg := range configs {
		if cfg.GroupVersionKind.Kind != "Gateway" {
			continue
		}
		selector := labels.SelectorFromSet(cfg.Spec.(interface{ GetSelector() map[string]string }).GetSelector())
		for _, p := range pods {
			if selector.Matches(labels.Set(p.Labels)) && !slices.ContainsFunc(gatewayPods, func(q corev1.Pod) bool {
				return q.Name == p.Name && q.Namespace == p.Namespace
			}) {
				gatewayPods = append(gatewayPods, p)
			}
		}
	}
	for _, p := range gatewayPods {
		report.GatewayPods = append(report.GatewayPods, p.Namespace+"/"+p.Name)
	}
	if len(gatewayPods) == 0 {
		return report, errors.New("no Gateway selects a ready pod: no gateway would serve the request")
	}
	pod := gatewayPods[0]

	server := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{Configs: configs, KubernetesObjects: objects})
	proxy := server.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ID:              pod.Name + "." + pod.Namespace,
		IPAddresses:     []string{pod.Status.PodIP},
		ConfigNamespace: pod.Namespace,
		Labels:          pod.Labels,
		Metadata:        &model.NodeMetadata{Namespace: pod.Namespace, Labels: pod.Labels},
	})
	report.Proxy = proxy.ID
	listeners := server.Listeners(proxy)
	sim := &simulation.Simulation{
		Listeners: listeners,
		Clusters:  server.Clusters(proxy),
		Routes:    server.RoutesFromListeners(proxy, listeners),
	}

	port, err := gatewayPort(ctx, c, pod)
	if err != nil {
		return report, err
	}
	secrets := secretReader{c: c, ctx: ctx}
	report.OK = true
	for _, host := range hosts {
		r := request(sim, secrets, pod, port, host, requestPath)
		report.OK = report.OK && r.Reaches
		report.Requests = append(report.Requests, r)
	}
	return report, nil
}

// gatewayPort is the pod port the gateway's Service sends its port 443 to.
func gatewayPort(ctx context.Context, c *live, pod corev1.Pod) (int, error) {
	services, err := c.kube.CoreV1().Services(pod.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	for _, s := range services.Items {
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		for _, p := range s.Spec.Ports {
			if p.Port == 443 {
				return p.TargetPort.IntValue(), nil
			}
		}
	}
	return 0, fmt.Errorf("no Service in %s sends port 443 to gateway pod %s", pod.Namespace, pod.Name)
}

func request(sim *simulation.Simulation, secrets secretReader, pod corev1.Pod, port int, host, requestPath string) Request {
	r := Request{Host: host, Path: requestPath}
	call := simulation.Call{
		Address:    pod.Status.PodIP,
		Port:       port,
		Path:       requestPath,
		Protocol:   simulation.HTTP,
		TLS:        simulation.TLS,
		HostHeader: host,
		CallMode:   simulation.CallModeGateway,
	}
	if net.ParseIP(host) == nil {
		call.Sni = host
	}
	result := sim.Run(call)
	r.Listener, r.FilterChain, r.Route, r.Cluster = result.ListenerMatched, result.FilterChainMatched, result.RouteMatched, result.ClusterMatched
	if result.Error != nil {
		r.Error = result.Error.Error()
		return r
	}
	// The downstream leg: the certificate the matched filter chain serves.
	if fc := findFilterChain(sim.Listeners, result); fc != nil {
		r.Downstream = downstreamLeg(fc, secrets, pod, host)
	} else {
		r.Problems = append(r.Problems, "the matched filter chain terminates no TLS")
	}
	// The route: its rewrite and the path that reaches the upstream.
	if rt := findRoute(sim.Routes, result); rt != nil {
		r.Rewrite = rt.GetRoute().GetPrefixRewrite()
		r.UpstreamPath = requestPath
		if prefix := rt.GetMatch().GetPrefix(); r.Rewrite != "" && strings.HasPrefix(requestPath, prefix) {
			r.UpstreamPath = r.Rewrite + strings.TrimPrefix(requestPath, prefix)
		}
	}
	// The upstream leg: the cluster's TLS context against kms-api's own certificate.
	idx := slices.IndexFunc(sim.Clusters, func(c *clusterv3.Cluster) bool { return c.Name == result.ClusterMatched })
	r.ClusterFound = idx >= 0
	if !r.ClusterFound {
		r.Problems = append(r.Problems, "the route's cluster "+result.ClusterMatched+" does not exist")
	} else {
		r.Upstream = upstreamLeg(sim.Clusters[idx], secrets, pod, host)
	}
	r.Reaches = r.ClusterFound && r.Downstream != nil && r.Downstream.Handshake == "ok" &&
		r.Upstream != nil && r.Upstream.Handshake == "ok" && len(r.Problems) == 0
	return r
}

func findFilterChain(listeners []*listenerv3.Listener, result simulation.Result) *listenerv3.FilterChain {
	for _, l := range listeners {
		if l.Name != result.ListenerMatched {
			continue
		}
		for _, fc := range l.FilterChains {
			if fc.Name == result.FilterChainMatched && fc.TransportSocket != nil {
				return fc
			}
		}
	}
	return nil
}

func findRoute(routes []*routev3.RouteConfiguration, result simulation.Result) *routev3.Route {
	rc := xdstest.ExtractRouteConfigurations(routes)[result.RouteConfigMatched]
	for _, vh := range rc.GetVirtualHosts() {
		if vh.Name != result.VirtualHostMatched {
			continue
		}
		for _, rt := range vh.Routes {
			if rt.Name == result.RouteMatched {
				return rt
			}
		}
	}
	return nil
}

// secretReader resolves the certificates Envoy would load: SDS names through
// Istio's credential parsers, files through the pod's secret volume mounts.
type secretReader struct {
	c   *live
	ctx context.Context
}

func (s secretReader) secret(namespace, name string) (*corev1.Secret, error) {
	return s.c.kube.CoreV1().Secrets(namespace).Get(s.ctx, name, metav1.GetOptions{})
}

// file reads a file of the pod as Envoy would see it: the key of the secret
// volume mounted at the file's directory.
func (s secretReader) file(pod corev1.Pod, file string) ([]byte, error) {
	dir, key := path.Dir(file), path.Base(file)
	for _, container := range pod.Spec.Containers {
		for _, mount := range container.VolumeMounts {
			if path.Clean(mount.MountPath) != dir {
				continue
			}
			for _, v := range pod.Spec.Volumes {
				if v.Name != mount.Name || v.Secret == nil {
					continue
				}
				secret, err := s.secret(pod.Namespace, v.Secret.SecretName)
				if err != nil {
					return nil, fmt.Errorf("%s is mounted from secret %s/%s, which cannot be read: %v", dir, pod.Namespace, v.Secret.SecretName, err)
				}
				data, ok := secret.Data[key]
				if !ok || len(data) == 0 {
					return nil, fmt.Errorf("secret %s/%s mounted at %s has no %s", pod.Namespace, v.Secret.SecretName, dir, key)
				}
				return data, nil
			}
		}
	}
	return nil, fmt.Errorf("gateway pod %s mounts no secret at %s", pod.Name, dir)
}

// keyPair resolves an Envoy certificate SDS resource to its certificate and key.
func (s secretReader) keyPair(pod corev1.Pod, resource string) ([]byte, []byte, error) {
	if files, ok := security.SdsCertificateConfigFromResourceName(resource); ok && files.IsKeyCertificate() {
		cert, err := s.file(pod, files.CertificatePath)
		if err != nil {
			return nil, nil, err
		}
		key, err := s.file(pod, files.PrivateKeyPath)
		return cert, key, err
	}
	ref, err := credentials.ParseResourceName(resource, pod.Namespace, cluster.ID("Kubernetes"), cluster.ID("Kubernetes"))
	if err != nil {
		return nil, nil, err
	}
	secret, err := s.secret(ref.Namespace, ref.Name)
	if err != nil {
		return nil, nil, fmt.Errorf("secret %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	info, err := kubecreds.ExtractCertInfo(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("secret %s/%s: %v", ref.Namespace, ref.Name, err)
	}
	return info.Cert, info.Key, nil
}

// roots resolves an Envoy validation SDS resource to the CA certificates it trusts.
func (s secretReader) roots(pod corev1.Pod, resource string) (*x509.CertPool, error) {
	if files, ok := security.SdsCertificateConfigFromResourceName(resource); ok && files.IsRootCertificate() {
		if files.CaCertificatePath == "system" {
			return x509.SystemCertPool()
		}
		pem, err := s.file(pod, files.CaCertificatePath)
		if err != nil {
			return nil, err
		}
		return poolOf(pem)
	}
	ref, err := credentials.ParseResourceName(resource, pod.Namespace, cluster.ID("Kubernetes"), cluster.ID("Kubernetes"))
	if err != nil {
		return nil, err
	}
	// As Istio's credentials controller: NAME-cacert, else the CA in NAME.
	secret, err := s.secret(ref.Namespace, ref.Name)
	if err != nil {
		stripped := strings.TrimSuffix(ref.Name, "-cacert")
		if secret, err = s.secret(ref.Namespace, stripped); err != nil {
			return nil, fmt.Errorf("secret %s/%s: %v", ref.Namespace, stripped, err)
		}
	}
	info, err := kubecreds.ExtractRoot(secret.Data)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %v", secret.Namespace, secret.Name, err)
	}
	return poolOf(info.Cert)
}

func poolOf(pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in the CA data")
	}
	return pool, nil
}

func downstreamLeg(fc *listenerv3.FilterChain, secrets secretReader, pod corev1.Pod, host string) *TLSLeg {
	leg := &TLSLeg{Handshake: "not attempted"}
	ctx := &tlsv3.DownstreamTlsContext{}
	if err := fc.TransportSocket.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		leg.SourceError = err.Error()
		return leg
	}
	configs := ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()
	if len(configs) == 0 {
		leg.SourceError = "the listener names no certificate"
		return leg
	}
	leg.CertificateSource = configs[0].Name
	cert, key, err := secrets.keyPair(pod, configs[0].Name)
	if err != nil {
		leg.SourceError = err.Error()
		return leg
	}
	leg.SourceExists = true
	// A client trusts the issuer of the gateway's certificate: the CA that
	// cert-manager records beside it, in the secret the Certificate fills.
	caPEM, err := issuerCA(secrets, pod, configs[0].Name)
	if err != nil {
		leg.Handshake = "no issuer CA to trust: " + err.Error()
		return leg
	}
	roots, err := poolOf(caPEM)
	if err != nil {
		leg.Handshake = err.Error()
		return leg
	}
	leg.Trust = "issuer CA (ca.crt beside the certificate)"
	leg.SNI = host
	leg.VerifyNames = []string{host}
	leg.Handshake = handshake(cert, key, &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	return leg
}

// issuerCA finds the ca.crt stored with the gateway certificate.
func issuerCA(secrets secretReader, pod corev1.Pod, resource string) ([]byte, error) {
	if files, ok := security.SdsCertificateConfigFromResourceName(resource); ok && files.IsKeyCertificate() {
		return secrets.file(pod, path.Join(path.Dir(files.CertificatePath), "ca.crt"))
	}
	ref, err := credentials.ParseResourceName(resource, pod.Namespace, cluster.ID("Kubernetes"), cluster.ID("Kubernetes"))
	if err != nil {
		return nil, err
	}
	secret, err := secrets.secret(ref.Namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	info, err := kubecreds.ExtractRoot(secret.Data)
	if err != nil {
		return nil, err
	}
	return info.Cert, nil
}

func upstreamLeg(c *clusterv3.Cluster, secrets secretReader, gateway corev1.Pod, host string) *TLSLeg {
	leg := &TLSLeg{Handshake: "not attempted"}
	cert, key, err := secrets.upstreamCertificate(c.Name)
	if err != nil {
		leg.SourceError = err.Error()
		return leg
	}
	leg.CertificateSource = "kms-api's own certificate"
	leg.SourceExists = true
	if c.TransportSocket == nil {
		leg.Handshake = "the gateway sends plain text to a TLS server"
		return leg
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if err := c.TransportSocket.GetTypedConfig().UnmarshalTo(ctx); err != nil {
		leg.Handshake = err.Error()
		return leg
	}
	var autoSni, autoSan bool
	if raw, ok := c.TypedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
		opts := &httpv3.HttpProtocolOptions{}
		if err := raw.UnmarshalTo(opts); err == nil {
			autoSni = opts.GetUpstreamHttpProtocolOptions().GetAutoSni()
			autoSan = opts.GetUpstreamHttpProtocolOptions().GetAutoSanValidation()
		}
	}
	leg.SNI = ctx.Sni
	if autoSni {
		leg.SNI = host
	}
	common := ctx.GetCommonTlsContext()
	var names []string
	var rootResource string
	if combined := common.GetCombinedValidationContext(); combined != nil {
		for _, m := range combined.GetDefaultValidationContext().GetMatchSubjectAltNames() {
			names = append(names, m.GetExact())
		}
		rootResource = combined.GetValidationContextSdsSecretConfig().GetName()
	} else if sds := common.GetValidationContextSdsSecretConfig(); sds != nil {
		rootResource = sds.GetName()
	}
	if autoSan {
		names = append(names, host)
	}
	leg.VerifyNames = names
	config := &tls.Config{ServerName: leg.SNI, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if rootResource == "" {
		leg.Trust = "none: the upstream certificate is not verified"
	} else {
		leg.Trust = rootResource
		roots, err := secrets.roots(gateway, rootResource)
		if err != nil {
			leg.SourceError = "trust: " + err.Error()
			leg.Handshake = "the trusted CA cannot be loaded: " + err.Error()
			return leg
		}
		// As Envoy: the chain must lead to the trusted CA and, when names are
		// listed, one of the certificate's names must be among them. The SNI is
		// only sent, never checked against the certificate by itself.
		config.VerifyConnection = func(state tls.ConnectionState) error {
			peer := state.PeerCertificates
			intermediates := x509.NewCertPool()
			for _, c := range peer[1:] {
				intermediates.AddCert(c)
			}
			if _, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates}); err != nil {
				return err
			}
			if len(names) == 0 {
				return nil
			}
			for _, n := range names {
				if peer[0].VerifyHostname(n) == nil || slices.ContainsFunc(peer[0].URIs, func(u *url.URL) bool { return u.String() == n }) {
					return nil
				}
			}
			return fmt.Errorf("certificate names %v, none of %v", append(peer[0].DNSNames, ipStrings(peer[0].IPAddresses)...), names)
		}
	}
	leg.Handshake = handshake(cert, key, config)
	return leg
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

// upstreamCertificate is what the pods behind the cluster's Service present:
// the TLS secret their pod mounts. Cluster names read outbound|PORT||HOST.
func (s secretReader) upstreamCertificate(clusterName string) ([]byte, []byte, error) {
	parts := strings.Split(clusterName, "|")
	if len(parts) != 4 {
		return nil, nil, fmt.Errorf("cluster %s is not a service cluster", clusterName)
	}
	labelsOf := strings.Split(parts[3], ".")
	if len(labelsOf) < 2 {
		return nil, nil, fmt.Errorf("cluster %s names no namespace", clusterName)
	}
	name, namespace := labelsOf[0], labelsOf[1]
	svc, err := s.c.kube.CoreV1().Services(namespace).Get(s.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("service %s/%s: %v", namespace, name, err)
	}
	pods, err := s.c.kube.CoreV1().Pods(namespace).List(s.ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return nil, nil, err
	}
	for _, p := range pods.Items {
		if !podReady(&p) {
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.Secret == nil {
				continue
			}
			secret, err := s.secret(namespace, v.Secret.SecretName)
			if err != nil || secret.Type != corev1.SecretTypeTLS {
				continue
			}
			return secret.Data["tls.crt"], secret.Data["tls.key"], nil
		}
	}
	return nil, nil, fmt.Errorf("no ready pod of service %s/%s mounts a TLS secret", namespace, name)
}

// handshake runs a real TLS handshake in memory: a server presenting
// cert/key, a client with config. Returns "ok" or the client's error.
func handshake(certPEM, keyPEM []byte, client *tls.Config) string {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "the certificate and key do not load: " + err.Error()
	}
	serverConn, clientConn := net.Pipe()
	defer serverConn.Close()
	defer clientConn.Close()
	go func() {
		server := tls.Server(serverConn, &tls.Config{Certificates: []tls.Certificate{pair}})
		_ = server.Handshake()
	}()
	_ = clientConn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tls.Client(clientConn, client).Handshake(); err != nil {
		return err.Error()
	}
	return "ok"
}
