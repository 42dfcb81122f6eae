// Command gpulab-fleet is the load generator of bench/fleet.py: N simulated
// agents, each with its own identity directory (node.key, node.pem, ca.pem and
// agent.json, as `gpulab-agent enroll` writes them), loaded and dialled with the
// agent's own identity package (mutual TLS, the pinned CA, TLS session
// resumption), each on its own connection, heartbeating the inventory with an
// 8-GPU node's message.
//
//	gpulab-fleet steady -identities DIR -n 10000 -interval 30s -duration 2m
//	gpulab-fleet storm  -identities DIR -n 10000 [-resume]
//
// steady: every agent starts at a random moment of the first interval (a fleet
// that came up over time), then heartbeats every interval ±10 %, as the agent
// does. storm: every agent opens a new connection at the same instant and sends
// one heartbeat, retrying after the agent's own backoff until it succeeds (with
// -resume each first connected once, so that it holds a session ticket). The
// result is one JSON object on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity"
)

// sources: connections come from 127.0.0.2 .. 127.0.0.(1+sources), so that N
// connections, and a storm's N more while the first N wait in TIME_WAIT, never
// run out of one address's ephemeral ports.
const sources = 64

type agent struct {
	id       *identity.Identity
	endpoint string
	source   net.IP
	resumed  *atomic.Int64
	creds    credentials.TransportCredentials
}

// countingCreds counts the handshakes that resumed a TLS session.
type countingCreds struct {
	credentials.TransportCredentials
	resumed *atomic.Int64
}

func (c countingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if tlsInfo, ok := info.(credentials.TLSInfo); ok && tlsInfo.State.DidResume {
		c.resumed.Add(1)
	}
	return conn, info, err
}

func (a *agent) dial() (*grpc.ClientConn, error) {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: a.source}}
	return grpc.NewClient(a.endpoint,
		grpc.WithTransportCredentials(a.creds),
		grpc.WithNoProxy(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}),
	)
}

// cpuSeconds is a process's utime+stime from /proc (0 when pid is 0 or unreadable).
func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	text := string(data)
	fields := strings.Fields(text[strings.LastIndexByte(text, ')')+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ, 100 on Linux
}

func request(i int) *agentv1.HeartbeatRequest {
	gpus := make([]*agentv1.Gpu, 8)
	for g := range gpus {
		gpus[g] = &agentv1.Gpu{
			Index: int32(g), Uuid: fmt.Sprintf("GPU-%08x-%04x-4c5d-8e9f-0123456789ab", i, g),
			Name: "NVIDIA H100 80GB HBM3", MemoryMb: 81559, MigCapable: true,
		}
	}
	return &agentv1.HeartbeatRequest{
		AgentVersion: "1.0.0-fleet",
		Hardware:     &agentv1.Hardware{CpuModel: "AMD EPYC 9454 48-Core Processor", CpuCores: 96, RamMb: 1_547_000, Gpus: gpus},
	}
}

func beat(ctx context.Context, conn *grpc.ClientConn, req *agentv1.HeartbeatRequest, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	started := time.Now()
	_, err := agentv1.NewHeartbeatClient(conn).Heartbeat(ctx, req)
	return time.Since(started), err
}

type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d)
	l.mu.Unlock()
}

func (l *latencies) ms(q float64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return 0
	}
	sort.Slice(l.all, func(i, j int) bool { return l.all[i] < l.all[j] })
	return float64(l.all[min(int(q*float64(len(l.all))), len(l.all)-1)].Microseconds()) / 1000
}

func load(dir string, n int, resumed *atomic.Int64) ([]*agent, error) {
	agents := make([]*agent, n)
	for i := range agents {
		id, err := identity.Load(filepath.Join(dir, fmt.Sprintf("%05d", i)))
		if err != nil {
			return nil, err
		}
		endpoint := id.Info().HeartbeatEndpoint
		host, _, err := net.SplitHostPort(endpoint)
		if err != nil {
			return nil, err
		}
		agents[i] = &agent{
			id: id, endpoint: endpoint, source: net.IPv4(127, 0, 0, byte(2+i%sources)), resumed: resumed,
			creds: countingCreds{credentials.NewTLS(id.ClientTLSConfig(host)), resumed},
		}
	}
	return agents, nil
}

// steady: every agent joins at a random moment of the ramp (its first heartbeat,
// with the TLS handshake and the node's first contact), then heartbeats every
// interval ±10 %. The held phase is every heartbeat sent from the end of the ramp
// for duration, when all agents have joined; the server's CPU is read over it.
func steady(agents []*agent, interval, ramp, duration time.Duration, serverPID int) map[string]any {
	var first, held latencies
	var joinErrs, heldErrs, joinBeats, heldBeats, connectErrs atomic.Int64
	errSamples := make(chan string, 5)
	began := time.Now()
	rampEnd := began.Add(ramp)
	deadline := rampEnd.Add(duration)
	var cpuAtRampEnd float64
	cpuRead := make(chan struct{})
	go func() {
		time.Sleep(time.Until(rampEnd))
		cpuAtRampEnd = cpuSeconds(serverPID)
		close(cpuRead)
	}()
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(rand.Float64() * float64(ramp)))
			conn, err := a.dial()
			if err != nil {
				connectErrs.Add(1)
				return
			}
			defer conn.Close()
			req := request(i)
			for n := 0; time.Now().Before(deadline); n++ {
				inHeld := !time.Now().Before(rampEnd)
				took, err := beat(context.Background(), conn, req, 30*time.Second)
				beats, errs := &joinBeats, &joinErrs
				if inHeld {
					beats, errs = &heldBeats, &heldErrs
				}
				beats.Add(1)
				switch {
				case err != nil:
					errs.Add(1)
					select {
					case errSamples <- err.Error():
					default:
					}
				case n == 0:
					first.add(took) // the connection's TLS handshake and the node's first contact included
				case inHeld:
					held.add(took)
				}
				time.Sleep(time.Duration(float64(interval) * (0.9 + 0.2*rand.Float64())))
			}
		}()
	}
	wg.Wait()
	<-cpuRead
	close(errSamples)
	var samples []string
	for s := range errSamples {
		samples = append(samples, s)
	}
	return map[string]any{
		"agents": len(agents), "interval_s": interval.Seconds(), "ramp_s": ramp.Seconds(), "duration_s": duration.Seconds(),
		"join_heartbeats": joinBeats.Load(), "join_errors": joinErrs.Load(), "connect_errors": connectErrs.Load(),
		"first_count": len(first.all), "first_p50_ms": first.ms(0.5), "first_p99_ms": first.ms(0.99),
		"heartbeats": heldBeats.Load(), "errors": heldErrs.Load(), "error_samples": samples,
		"steady_count": len(held.all), "steady_p50_ms": held.ms(0.5), "steady_p99_ms": held.ms(0.99), "steady_max_ms": held.ms(1),
		"server_cpu_s": cpuSeconds(serverPID) - cpuAtRampEnd,
	}
}

// storm: every agent reconnects at the same instant; how long until all have
// had a heartbeat answered.
func storm(agents []*agent, resume bool, resumed *atomic.Int64, serverPID int) map[string]any {
	if resume { // one connection each first, so that every agent holds a session ticket
		slots := make(chan struct{}, 256)
		var wg sync.WaitGroup
		for i, a := range agents {
			wg.Add(1)
			slots <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				if conn, err := a.dial(); err == nil {
					beat(context.Background(), conn, request(i), 60*time.Second)
					conn.Close()
				}
			}()
		}
		wg.Wait()
		time.Sleep(2 * time.Second) // the closes reach the server before the storm
	}
	resumed.Store(0)
	cpuBefore := cpuSeconds(serverPID)
	var done latencies
	var attempts, failed, lost atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	began := time.Now()
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			conn, err := a.dial()
			if err != nil {
				lost.Add(1)
				return
			}
			defer conn.Close()
			req := request(i)
			for try := 1; ; try++ {
				attempts.Add(1)
				if _, err := beat(context.Background(), conn, req, 30*time.Second); err == nil {
					done.add(time.Since(began))
					return
				}
				failed.Add(1)
				if time.Since(began) > 5*time.Minute {
					lost.Add(1)
					return
				}
				// The agent's backoff after the n-th failure: 5 s doubled, less up to 20 %.
				time.Sleep(time.Duration(float64(min(5*time.Second<<(try-1), 5*time.Minute)) * (0.8 + 0.2*rand.Float64())))
			}
		}()
	}
	began = time.Now()
	close(start)
	wg.Wait()
	return map[string]any{
		"agents": len(agents), "resume": resume, "all_ok_after_s": done.ms(1) / 1000, "p50_s": done.ms(0.5) / 1000,
		"p99_s": done.ms(0.99) / 1000, "ok": len(done.all), "attempts": attempts.Load(), "failed_attempts": failed.Load(),
		"lost": lost.Load(), "resumed_handshakes": resumed.Load(), "server_cpu_s": cpuSeconds(serverPID) - cpuBefore,
	}
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "steady" && os.Args[1] != "storm") {
		fmt.Fprintln(os.Stderr, "usage: gpulab-fleet steady|storm -identities DIR -n N [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("identities", "", "a folder of identity folders 00000, 00001, ...")
	n := fs.Int("n", 100, "agents")
	interval := fs.Duration("interval", 30*time.Second, "steady: heartbeat interval")
	ramp := fs.Duration("ramp", 0, "steady: agents join at random over this long (default: one interval)")
	duration := fs.Duration("duration", 2*time.Minute, "steady: how long all agents are held, after the ramp")
	resume := fs.Bool("resume", false, "storm: connect once first, so that every reconnect can resume its TLS session")
	serverPID := fs.Int("server-pid", 0, "the server's pid, for its CPU time over the measured phase")
	fs.Parse(os.Args[2:])
	var limit syscall.Rlimit // one descriptor per connection: as many as allowed
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit) == nil {
		limit.Cur = limit.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit)
	}
	var resumed atomic.Int64
	agents, err := load(*dir, *n, &resumed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpulab-fleet:", err)
		os.Exit(1)
	}
	var result map[string]any
	if os.Args[1] == "steady" {
		if *ramp == 0 {
			*ramp = *interval
		}
		result = steady(agents, *interval, *ramp, *duration, *serverPID)
		result["resumed_handshakes"] = resumed.Load()
	} else {
		result = storm(agents, *resume, &resumed, *serverPID)
	}
	json.NewEncoder(os.Stdout).Encode(result)
}
