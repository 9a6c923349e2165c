// node-opcua plays a PLC with PackML machines for `twin opcua discover` and `twin sync`:
// each unit is a PackMLBaseObjectType instance (organized under Objects/PackMLObjects, a component of its
// station) with PackTags-style tags of string node ids: StateCurrent (the PackML state number), Batch,
// BatchesDone (UInt32) and ProdProcessedCount, a UInt32 good-count that rises continuously while the unit
// is in Execute (as real PLC counters do). There is no product tag. Counters are retentive: a restarted
// PLC (`resume`) goes on from the values it stopped at.
//
//   node plc.js '{"port": 4842, "line": "plc", "stations": [["mix", 1], ["fill", 2]], "batchSeconds": 1.5,
//                 "batchSize": 1000, "resume": null, "state": "/tmp/plc-state.json", "ticks": 100}'
//
// It prints "ready" when it listens; after `ticks` ticks of 0.2 s it stops changing values and prints one
// JSON line, the changes it made per tag (and again at SIGTERM). With `go` (a file name) it starts changing
// values only once that file exists.
"use strict";
const fs = require("fs");
const path = require("path");
const {
    OPCUAServer, nodesets, DataType, StatusCodes, Variant, OPCUACertificateManager, SecurityPolicy,
    MessageSecurityMode,
} = require("node-opcua");

const PACKML = path.resolve(__dirname, "../../connectors/opcua/nodesets/Opc.Ua.PackML.NodeSet2.xml");
const EXECUTE = 6, SUSPENDED = 5, HELD = 11;

async function main() {
    const args = JSON.parse(process.argv[2]);
    const resume = args.resume && fs.existsSync(args.resume) ? JSON.parse(fs.readFileSync(args.resume)) : {};
    const pkiRoot = path.join(path.dirname(args.state), "plc-pki");
    const serverCertificateManager = new OPCUACertificateManager({ rootFolder: pkiRoot, automaticallyAcceptUnknownCertificate: true });
    await serverCertificateManager.initialize();
    const server = new OPCUAServer({
        port: args.port,
        hostname: "127.0.0.1",
        nodeset_filename: [nodesets.standard, PACKML],
        serverCertificateManager,
        securityPolicies: [SecurityPolicy.None],
        securityModes: [MessageSecurityMode.None],
        allowAnonymous: true,
        buildInfo: { productName: "node-opcua PackML PLC" },
    });
    await server.initialize();
    const addressSpace = server.engine.addressSpace;
    const ns = addressSpace.registerNamespace("urn:node-opcua:plc");
    const packmlIndex = addressSpace.getNamespaceIndex("http://opcfoundation.org/UA/PackML/");
    const machineType = addressSpace.findObjectType("PackMLBaseObjectType", packmlIndex);
    const packmlObjects = addressSpace.rootFolder.objects.getFolderElementByName("PackMLObjects");
    const line = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: args.line, nodeId: `s=${args.line}` });

    const sent = {};
    const units = [];
    const set = (variable, dataType, value) => {
        variable.setValueFromSource(new Variant({ dataType, value }), StatusCodes.Good, new Date());
        const key = variable.nodeId.value;
        sent[key] = (sent[key] || 0) + 1;
    };
    for (const [station, count] of args.stations) {
        const st = ns.addObject({ componentOf: line, browseName: station, nodeId: `s=${args.line}.${station}` });
        for (let u = 1; u <= count; u++) {
            const id = `${args.line}.${station}.U${u}`;
            const machine = machineType.instantiate({ browseName: `U${u}`, componentOf: st, nodeId: `s=${id}` });
            if (args.organize !== false) {  // false: a server that does not use the PackMLObjects folder
                packmlObjects.addReference({ referenceType: "Organizes", nodeId: machine.nodeId });
            }
            const tag = (name, dataType) => ns.addVariable({
                componentOf: machine, browseName: name, nodeId: `s=${id}.${name}`, dataType,
            });
            const saved = resume[id] || {};
            const unit = {
                id,
                state: tag("StateCurrent", "Int32"),
                batch: tag("Batch", "Int32"),
                done: tag("BatchesDone", "UInt32"),
                good: tag("ProdProcessedCount", "UInt32"),
                values: { state: SUSPENDED, batch: saved.batch ?? -1, done: saved.done ?? 0, good: saved.good ?? 0 },
                elapsed: 0,
                nextBatch: saved.nextBatch ?? (units.length * 1000),
                phase: "wait",
                phaseLeft: 0.2 + 0.1 * units.length,
            };
            set(unit.state, DataType.Int32, unit.values.state);
            set(unit.batch, DataType.Int32, unit.values.batch);
            set(unit.done, DataType.UInt32, unit.values.done);
            set(unit.good, DataType.UInt32, unit.values.good);
            units.push(unit);
        }
    }
    await server.start();
    console.log("ready");

    const tick = 0.2;  // seconds
    const perTick = Math.round(args.batchSize * tick / args.batchSeconds);
    let ticks = 0;
    const timer = setInterval(() => {
        if (args.go && !fs.existsSync(args.go)) return;  // waiting for the go file: the client subscribes first
        ticks += 1;
        if (args.ticks && ticks > args.ticks) {  // the run is over: no more changes, the server stays up
            clearInterval(timer);
            console.log(JSON.stringify({ sent, done: true }));
            return;
        }
        for (const unit of units) {
            const v = unit.values;
            unit.phaseLeft -= tick;
            if (unit.phase === "run") {
                v.good = (v.good + perTick) % 4294967296;  // continuous counter, wraps as a UInt32
                set(unit.good, DataType.UInt32, v.good);
                if (unit.phaseLeft <= 1e-9) {
                    v.done = (v.done + 1) % 4294967296;
                    set(unit.done, DataType.UInt32, v.done);
                    unit.phase = "wait";
                    unit.phaseLeft = ticks % 7 === 0 ? 1.0 : 0.4;  // now and then a fault (Held), else starved
                    v.state = ticks % 7 === 0 ? HELD : SUSPENDED;
                    set(unit.state, DataType.Int32, v.state);
                }
            } else if (unit.phaseLeft <= 1e-9) {
                v.batch = unit.nextBatch++;
                set(unit.batch, DataType.Int32, v.batch);
                v.state = EXECUTE;
                set(unit.state, DataType.Int32, v.state);
                unit.phase = "run";
                unit.phaseLeft = args.batchSeconds;
            }
        }
        const state = {};
        for (const unit of units) state[unit.id] = { ...unit.values, nextBatch: unit.nextBatch };
        fs.writeFileSync(args.state + ".tmp", JSON.stringify(state));
        fs.renameSync(args.state + ".tmp", args.state);
    }, tick * 1000);

    const stop = async () => {
        clearInterval(timer);
        console.log(JSON.stringify({ sent }));
        await server.shutdown(0);
        process.exit(0);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

main().catch((err) => { console.log(JSON.stringify({ error: String(err && err.stack || err) })); process.exit(1); });
