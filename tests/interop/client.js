// node-opcua as an independent client of `twin serve`: browse the PackML types and machines, read,
// subscribe, call methods, read history, and report every refusal. One JSON object on stdout.
//
//   node client.js '{"endpoint": "opc.tcp://127.0.0.1:4840", "mode": "SignAndEncrypt", "pki": "/tmp/pki",
//                    "user": "op", "password": "pw", "namespace": "urn:twin:mini", "line": "mini",
//                    "unit": "mini.fill.Unit1", "serverCert": "/path/server/cert.der", "seconds": 3}'
"use strict";
const fs = require("fs");
const path = require("path");
const {
    OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, TimestampsToReturn, NodeClass,
    OPCUACertificateManager, UserTokenType, BrowseDirection, StatusCodes, DataType, constructEventFilter,
} = require("node-opcua");

async function main() {
    const args = JSON.parse(process.argv[2]);
    const out = { steps: {} };
    const certificateManager = new OPCUACertificateManager({
        rootFolder: args.pki,
        automaticallyAcceptUnknownCertificate: false,
    });
    await certificateManager.initialize();
    if (args.serverCert) {  // trust the twin's certificate, as a plant's client would be told to
        await certificateManager.trustCertificate(fs.readFileSync(args.serverCert));
    }
    const mode = MessageSecurityMode[args.mode];
    const client = OPCUAClient.create({
        applicationName: "node-opcua interop",
        applicationUri: "urn:node-opcua:interop",
        securityMode: mode,
        securityPolicy: mode === MessageSecurityMode.None ? SecurityPolicy.None : SecurityPolicy.Basic256Sha256,
        endpointMustExist: false,
        connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
        clientCertificateManager: certificateManager,
        requestedSessionTimeout: 60000,
    });
    out.clientCertificate = path.join(args.pki, "own", "certs", "client_certificate.pem");
    try {
        await client.connect(args.endpoint);
    } catch (err) {
        out.connect = "refused: " + err.message.split("\n")[0];
        console.log(JSON.stringify(out));
        return;
    }
    out.connect = "ok";
    const identity = args.user
        ? { type: UserTokenType.UserName, userName: args.user, password: args.password }
        : { type: UserTokenType.Anonymous };
    let session;
    try {
        session = await client.createSession(identity);
    } catch (err) {
        out.session = "refused: " + err.message.split("\n")[0];
        await client.disconnect();
        console.log(JSON.stringify(out));
        return;
    }
    out.session = "ok";
    try {
        const namespaces = await session.readNamespaceArray();
        const ns = namespaces.indexOf(args.namespace);
        const pns = namespaces.indexOf("http://opcfoundation.org/UA/PackML/");
        out.namespaces = { twin: ns, packml: pns };
        const id = (s) => `ns=${ns};s=${s}`;

        // The PackML types and the machines organized under Objects/PackMLObjects
        const types = await session.browse({
            nodeId: "i=58", referenceTypeId: "HasSubtype", browseDirection: BrowseDirection.Forward,
            includeSubtypes: true, resultMask: 63,
        });
        const sub = [];
        for (const ref of types.references) {
            if (ref.nodeId.namespace === pns) sub.push(ref.browseName.name);
        }
        out.packmlObjectTypes = sub.sort();
        const objects = await session.browse("i=85");
        const folder = objects.references.find((r) => r.browseName.name === "PackMLObjects");
        const machines = await session.browse({
            nodeId: folder.nodeId, referenceTypeId: "Organizes", browseDirection: BrowseDirection.Forward,
            includeSubtypes: true, resultMask: 63,
        });
        out.machines = machines.references.map((r) => ({
            id: r.nodeId.value, type: r.typeDefinition.toString(), name: r.browseName.name,
        }));

        // Reads: PackML state and speed with its units and range, the twin's counters
        const unit = args.unit;
        const exec = `${unit}.BaseStateMachine.MachineState.ExecuteState.CurrentState`;
        const toRead = [exec, `${exec}.Number`, `${unit}.Status.CurMachSpeed`, `${unit}.Status.MachSpeed.EURange`,
            `${unit}.Status.MachSpeed.EngineeringUnits`, `${unit}.ProdProcessedCount`, `${args.line}.SimTime`,
            `${unit}.Admin.ProdProcessedCount`];
        const values = await session.read(toRead.map((s) => ({ nodeId: id(s), attributeId: AttributeIds.Value })));
        out.read = {};
        toRead.forEach((s, i) => {
            const dv = values[i];
            let v = dv.value.value;
            if (v && v.text !== undefined) v = v.text;
            else if (v && v.low !== undefined && v.high !== undefined) v = { low: v.low, high: v.high };
            else if (v && v.unitId !== undefined) v = { unitId: v.unitId, namespaceUri: v.namespaceUri, displayName: v.displayName.text };
            else if (Array.isArray(v)) v = v.map((c) => ({ id: c.iD ?? c.id ?? c.ID, name: c.name, count: c.count, accCount: c.accCount }));
            out.read[s] = { status: dv.statusCode.name, type: DataType[dv.value.dataType], value: v };
        });

        // A subscription: the simulated clock and the unit's state
        const subscription = await session.createSubscription2({
            requestedPublishingInterval: 100, requestedLifetimeCount: 600, requestedMaxKeepAliveCount: 20,
            maxNotificationsPerPublish: 1000, publishingEnabled: true, priority: 1,
        });
        const changes = [];
        for (const s of [`${args.line}.SimTime`, exec]) {
            const item = await subscription.monitor(
                { nodeId: id(s), attributeId: AttributeIds.Value },
                { samplingInterval: 50, discardOldest: true, queueSize: 100 }, TimestampsToReturn.Both,
            );
            item.on("changed", (dv) => changes.push([s, dv.value.value && dv.value.value.text !== undefined ? dv.value.value.text : dv.value.value]));
        }
        // Alarms and conditions, reported through the Server object
        const events = [];
        const eventItem = await subscription.monitor(
            { nodeId: "i=2253", attributeId: AttributeIds.EventNotifier },
            { queueSize: 1000, discardOldest: true, filter: constructEventFilter(["EventId", "ConditionName", "SourceName", "Severity", "Retain"]) },
            TimestampsToReturn.Both,
        );
        eventItem.on("changed", (fields) => events.push(fields.map((f) => f.value)));
        await new Promise((r) => setTimeout(r, 1000 * (args.seconds || 3)));
        await subscription.terminate();
        out.events = {
            count: events.length,
            conditions: [...new Set(events.map((e) => e[1]))].sort(),
            severities: [...new Set(events.map((e) => e[3]))].sort(),
        };
        const clock = changes.filter((c) => c[0] === `${args.line}.SimTime`).map((c) => c[1]);
        out.subscription = { changes: changes.length, clockRises: clock.length > 1 && clock[clock.length - 1] > clock[0] };

        // History of the clock
        const end = new Date(Date.now() + 60000);
        const start = new Date(Date.now() - 3600000);
        const history = await session.readHistoryValue({ nodeId: id(`${args.line}.SimTime`) }, start, end);
        out.history = { status: history.statusCode.name, values: (history.historyData.dataValues || []).length };
        const noHistory = await session.readHistoryValue({ nodeId: id(`${args.line}.Simulated`) }, start, end);
        out.historyOfAProperty = noHistory.statusCode.name;

        // Methods: the line's Pause/Start (operators only) and a PackML unit command (not supported)
        const refusal = (err) => (String(err.message).match(/Bad[A-Za-z]+/) || [String(err.message)])[0];
        const call = async (obj, method, inputArguments) => {
            try {
                const r = await session.call({ objectId: id(obj), methodId: id(`${obj}.${method}`), inputArguments });
                return r.statusCode.name;
            } catch (err) {
                return refusal(err);
            }
        };
        out.calls = {
            pause: await call(args.line, "Pause", []),
            start: await call(args.line, "Start", []),
            setParameter: await call(args.line, "SetParameter", [
                { dataType: DataType.String, value: "stations.nothing.units" }, { dataType: DataType.String, value: "2" }]),
            packmlSetMachSpeed: await call(unit, "SetMachSpeed", [{ dataType: DataType.Float, value: 10.0 }]),
        };
        // A write: every variable is read-only
        try {
            const write = await session.write({ nodeId: id(`${args.line}.SimTime`), attributeId: AttributeIds.Value,
                value: { value: { dataType: DataType.Double, value: 1.0 } } });
            out.write = write.name;
        } catch (err) {
            out.write = refusal(err);
        }
    } finally {
        await session.close();
        await client.disconnect();
    }
    console.log(JSON.stringify(out));
}

main().catch((err) => { console.log(JSON.stringify({ error: String(err && err.stack || err) })); process.exit(1); });
