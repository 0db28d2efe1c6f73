// Package smtptest is a tiny in-process SMTP server for tests (like
// net/http/httptest): EHLO, optional STARTTLS and AUTH PLAIN, MAIL, RCPT,
// DATA, RSET, NOOP, QUIT. It records every message it accepts. It binds
// 127.0.0.1 on a free port.
package smtptest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"time"
)

// Message is one accepted message.
type Message struct {
	From     string
	To       []string
	Data     []byte // as sent, dot-unstuffed, CRLF line ends
	TLS      bool   // sent after STARTTLS
	AuthUser string
}

// Options configure the server.
type Options struct {
	// TLS enables STARTTLS with this certificate (see SelfSigned).
	TLS *tls.Config
	// User and Password enable AUTH PLAIN; then MAIL needs authentication.
	User, Password string
	// Reject lists recipients refused with 550.
	Reject []string
	// Silent accepts connections and never answers (timeout tests).
	Silent bool
}

// Server is a running test SMTP server.
type Server struct {
	opt  Options
	ln   net.Listener
	msgs chan Message
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]bool
}

// Start listens on 127.0.0.1:0 and serves.
func Start(opt Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{opt: opt, ln: ln, msgs: make(chan Message, 64), conn: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Messages delivers accepted messages.
func (s *Server) Messages() <-chan Message { return s.msgs }

// Close stops the server and its connections; safe twice.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conn[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conn, c)
				s.mu.Unlock()
				c.Close()
			}()
			if s.opt.Silent {
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}
			s.serve(c)
		}()
	}
}

type session struct {
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	tls      bool
	authUser string
	from     string
	to       []string
}

func (ss *session) reply(format string, a ...any) error {
	fmt.Fprintf(ss.w, format+"\r\n", a...)
	return ss.w.Flush()
}

func (ss *session) line() (string, error) {
	ss.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	l, err := ss.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

func (s *Server) serve(c net.Conn) {
	ss := &session{conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
	if ss.reply("220 smtptest ESMTP ready") != nil {
		return
	}
	for {
		l, err := ss.line()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(l, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			fmt.Fprintf(ss.w, "250-smtptest greets %s\r\n", arg)
			if s.opt.TLS != nil && !ss.tls {
				ss.w.WriteString("250-STARTTLS\r\n")
			}
			if s.opt.User != "" {
				ss.w.WriteString("250-AUTH PLAIN\r\n")
			}
			err = ss.reply("250 8BITMIME")
		case "STARTTLS":
			if s.opt.TLS == nil || ss.tls {
				err = ss.reply("502 STARTTLS not available")
				break
			}
			if err = ss.reply("220 go ahead"); err != nil {
				return
			}
			tc := tls.Server(c, s.opt.TLS)
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			if err = tc.Handshake(); err != nil {
				return
			}
			tc.SetDeadline(time.Time{})
			ss = &session{conn: tc, r: bufio.NewReader(tc), w: bufio.NewWriter(tc), tls: true}
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") || s.opt.User == "" {
				err = ss.reply("504 unrecognized authentication type")
				break
			}
			if resp == "" {
				if err = ss.reply("334 "); err != nil {
					return
				}
				if resp, err = ss.line(); err != nil {
					return
				}
			}
			raw, derr := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if derr != nil || len(parts) != 3 || parts[1] != s.opt.User || parts[2] != s.opt.Password {
				err = ss.reply("535 authentication failed")
				break
			}
			ss.authUser = parts[1]
			err = ss.reply("235 authenticated")
		case "MAIL":
			if s.opt.User != "" && ss.authUser == "" {
				err = ss.reply("530 authentication required")
				break
			}
			ss.from, ss.to = addr(arg), nil
			err = ss.reply("250 OK")
		case "RCPT":
			to := addr(arg)
			rejected := false
			for _, r := range s.opt.Reject {
				rejected = rejected || strings.EqualFold(r, to)
			}
			if rejected {
				err = ss.reply("550 no such user %s", to)
				break
			}
			ss.to = append(ss.to, to)
			err = ss.reply("250 OK")
		case "DATA":
			if ss.from == "" || len(ss.to) == 0 {
				err = ss.reply("503 need MAIL and RCPT first")
				break
			}
			if err = ss.reply("354 end data with <CR><LF>.<CR><LF>"); err != nil {
				return
			}
			var data strings.Builder
			for {
				dl, rerr := ss.line()
				if rerr != nil {
					return
				}
				if dl == "." {
					break
				}
				data.WriteString(strings.TrimPrefix(dl, "."))
				data.WriteString("\r\n")
			}
			s.msgs <- Message{From: ss.from, To: ss.to, Data: []byte(data.String()), TLS: ss.tls, AuthUser: ss.authUser}
			ss.from, ss.to = "", nil
			err = ss.reply("250 OK queued")
		case "RSET":
			ss.from, ss.to = "", nil
			err = ss.reply("250 OK")
		case "NOOP":
			err = ss.reply("250 OK")
		case "QUIT":
			ss.reply("221 bye")
			return
		default:
			err = ss.reply("502 command not implemented")
		}
		if err != nil {
			return
		}
	}
}

// addr extracts the address of "FROM:<a@b>" / "TO:<a@b>".
func addr(arg string) string {
	if i := strings.IndexByte(arg, '<'); i >= 0 {
		if j := strings.IndexByte(arg[i:], '>'); j > 0 {
			return arg[i+1 : i+j]
		}
	}
	_, a, _ := strings.Cut(arg, ":")
	return strings.TrimSpace(a)
}

// SelfSigned returns a server TLS config with a fresh certificate for
// 127.0.0.1 and a pool that trusts it (for the client).
func SelfSigned() (server *tls.Config, roots *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtptest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}, MinVersion: tls.VersionTLS12}, roots, nil
}
