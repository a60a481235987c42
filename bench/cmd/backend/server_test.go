package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startServer(t *testing.T, id string) (*Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(id)
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		lis.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	return s, lis.Addr().String()
}

func TestServerKeepAlive(t *testing.T) {
	s, addr := startServer(t, "b7")
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := range 5 {
		var resp *http.Response
		var err error
		if i%2 == 0 {
			resp, err = client.Get("http://" + addr + "/x")
		} else {
			resp, err = client.Post("http://"+addr+"/y", "text/plain", strings.NewReader("some body"))
		}
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok\n" || resp.Header.Get("X-Backend") != "b7" {
			t.Fatalf("request %d: got %d %q X-Backend=%q", i, resp.StatusCode, body, resp.Header.Get("X-Backend"))
		}
	}
	if got := s.Count(); got != 5 {
		t.Errorf("Count() = %d, want 5", got)
	}
	resp, err := client.Get("http://" + addr + "/__count")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "5 1\n" {
		t.Errorf("/__count = %q, want %q (5 requests on 1 connection)", body, "5 1\n")
	}
}

func TestServerPipelinedAndSplit(t *testing.T) {
	_, addr := startServer(t, "b1")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	all := strings.Repeat(req, 3) + "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	// Send in small pieces so heads and bodies straddle reads.
	for i := 0; i < len(all); i += 7 {
		if _, err := io.WriteString(c, all[i:min(i+7, len(all))]); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(c)
	for i := range 4 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("response %d: status %d", i, resp.StatusCode)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close: got %v, want EOF", err)
	}
}

func TestServerRejects(t *testing.T) {
	tests := []struct {
		name, req  string
		wantStatus int
	}{
		{"answers 501 to a chunked body", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"answers 400 to a malformed request line", "GARBAGE\r\n\r\n", 400},
		{"answers 400 to a bad Content-Length", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400},
		{"answers 431 to a huge head", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", maxHeader) + "\r\n\r\n", 431},
	}
	_, addr := startServer(t, "b1")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, tc.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
		})
	}
}
