// node-opcua imports NodeSet2 files (the OPC UA base model, PackML, then the twin's export) into an
// address space of its own and reports what it finds of one unit. One JSON object on stdout.
//
//   node import_nodeset.js '{"files": ["Opc.Ua.PackML.NodeSet2.xml", "mini.xml"], "namespace": "urn:twin:mini",
//                            "unit": "mini.fill.Unit2"}'
"use strict";
const { AddressSpace, generateAddressSpace, nodesets } = require("node-opcua");

async function main() {
    const args = JSON.parse(process.argv[2]);
    const addressSpace = AddressSpace.create();
    await generateAddressSpace(addressSpace, [nodesets.standard, ...args.files]);
    const ns = addressSpace.getNamespaceIndex(args.namespace);
    const unit = addressSpace.findNode(`ns=${ns};s=${args.unit}`);
    const out = { namespaces: addressSpace.getNamespaceArray().map((n) => n.namespaceUri), found: !!unit };
    if (unit) {
        out.browseName = unit.browseName.name;
        out.typeDefinition = unit.typeDefinitionObj.browseName.name;
        out.children = unit.getComponents().map((c) => c.browseName.name).sort();
        const speed = addressSpace.findNode(`ns=${ns};s=${args.unit}.Status.MachSpeed`);
        out.machSpeedType = speed ? speed.typeDefinitionObj.browseName.name : null;
        const range = addressSpace.findNode(`ns=${ns};s=${args.unit}.Status.MachSpeed.EURange`);
        out.euRangeHigh = range ? range.readValue().value.value.high : null;
    }
    addressSpace.dispose();
    console.log(JSON.stringify(out));
}

main().catch((err) => { console.log(JSON.stringify({ error: String(err && err.stack || err) })); process.exit(1); });
