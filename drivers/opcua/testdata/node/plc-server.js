// A PLC stand-in on node-opcua (a third-party OPC UA stack) for the Go
// driver's interoperability test (drivers/opcua/node_test.go).
//
// It prints "@serialine {"ready":true,...}" on stdout when it listens, and
// takes one JSON command per line on stdin (replies: "@serialine <json>"):
//   {"cmd":"set","tag":"ProductPresent","value":true}   change a variable
//   {"cmd":"state"}           -> {"state":{...values...,"rejects":n}}
//   {"cmd":"restart"}         -> shutdown, a new server on the same port, {"ready":true,...}
// It exits when stdin closes.
"use strict";
const os = require("os");
const path = require("path");
const readline = require("readline");
const { OPCUAServer } = require("node-opcua-server");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const { MessageSecurityMode, SecurityPolicy } = require("node-opcua-secure-channel");
const { StatusCodes } = require("node-opcua-status-code");
const { Variant, DataType } = require("node-opcua-variant");

const NS = "urn:serialine:test:node-plc";
const pki = process.env.PKI_DIR || path.join(os.tmpdir(), "serialine-node-plc-pki");
const users = { edge: "edge-secret-1" };

// The PLC's memory survives restarts (retained variables).
const values = { Reject: false, Level: false, LineRunning: true, ProductPresent: false, GoodCount: 0, RejectCount: 0, Small: 0 };
let rejects = 0;
const types = { Reject: DataType.Boolean, Level: DataType.Boolean, LineRunning: DataType.Boolean, ProductPresent: DataType.Boolean,
  GoodCount: DataType.UInt32, RejectCount: DataType.UInt32, Small: DataType.UInt16 };
const inputs = new Set(["LineRunning", "ProductPresent"]);

let server = null;
let port = 0;
let vars = {};

// Replies carry a marker: node-opcua logs its own warnings on stdout.
function reply(obj) { process.stdout.write("@serialine " + JSON.stringify(obj) + "\n"); }

async function start() {
  const serverCertificateManager = new OPCUACertificateManager({ automaticallyAcceptUnknownCertificate: true, rootFolder: path.join(pki, "server") });
  await serverCertificateManager.initialize();
  const userCertificateManager = new OPCUACertificateManager({ automaticallyAcceptUnknownCertificate: true, rootFolder: path.join(pki, "user") });
  await userCertificateManager.initialize();
  server = new OPCUAServer({
    port, hostname: "127.0.0.1", alternateHostname: ["127.0.0.1"],
    resourcePath: "/UA/PLC",
    serverCertificateManager, userCertificateManager,
    securityPolicies: [SecurityPolicy.None, SecurityPolicy.Basic256Sha256, SecurityPolicy.Aes128_Sha256_RsaOaep, SecurityPolicy.Aes256_Sha256_RsaPss],
    securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
    allowAnonymous: false,
    userManager: { isValidUser: (u, p) => users[u] !== undefined && users[u] === p },
    buildInfo: { productName: "serialine node-opcua PLC stand-in" },
  });
  await server.initialize();
  const as = server.engine.addressSpace;
  const ns = as.registerNamespace(NS);
  const line = ns.addObject({ organizedBy: as.rootFolder.objects, browseName: "Line1", nodeId: "s=Line1" });
  vars = {};
  for (const name of Object.keys(values)) {
    const writable = !inputs.has(name);
    vars[name] = ns.addVariable({
      componentOf: line, browseName: name, nodeId: "s=Line1." + name,
      dataType: DataType[types[name]],
      minimumSamplingInterval: 50,
      accessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      value: {
        get: () => new Variant({ dataType: types[name], value: values[name] }),
        set: (v) => {
          if (v.dataType !== types[name]) return StatusCodes.BadTypeMismatch;
          if (name === "Reject" && v.value === true) rejects++;
          values[name] = v.value;
          return StatusCodes.Good;
        },
      },
    });
  }
  await server.start();
  port = server.endpoints[0].port;
  reply({ ready: true, port, namespace: NS, path: "/UA/PLC" });
}

async function handle(line) {
  let msg;
  try { msg = JSON.parse(line); } catch (e) { reply({ error: "bad json: " + e.message }); return; }
  switch (msg.cmd) {
    case "set":
      if (!(msg.tag in values)) { reply({ error: "no tag " + msg.tag }); return; }
      values[msg.tag] = msg.value;
      vars[msg.tag].touchValue(); // notify monitored items
      reply({ ok: true });
      return;
    case "state":
      reply({ state: Object.assign({ rejects }, values) });
      return;
    case "restart":
      await server.shutdown(0);
      await start();
      return;
    default:
      reply({ error: "unknown command " + msg.cmd });
  }
}

(async () => {
  await start();
  const rl = readline.createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  rl.on("line", (l) => { queue = queue.then(() => handle(l)).catch((e) => reply({ error: String(e) })); });
  rl.on("close", async () => { await queue; await server.shutdown(0); process.exit(0); });
})().catch((e) => { console.error(e); process.exit(1); });
