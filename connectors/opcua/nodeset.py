"""NodeSet2 export of the twin's information model, for engineering tools and other OPC UA stacks.

    twin opcua nodeset osd-tablet --out osd-tablet.NodeSet2.xml

    >>> text = asyncio.run(export_nodeset(spec))     # the UANodeSet XML of the twin's namespace

The file holds every node of the namespace ``urn:twin:<line>`` (site, area, line, stations, units as
PackML machines, KPIs, methods) with its values at time 0. It references the OPC UA base model and the
PackML model (``http://opcfoundation.org/UA/PackML/``, ``Models/RequiredModel``): a tool loads the
PackML NodeSet (``connectors/opcua/nodesets/``) first, then this file.
"""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from connectors.opcua.packml import PACKML_URI
from twin.spec.model import LineSpec

UA_NS = "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"


async def export_nodeset(spec: LineSpec, site: str = "Site", area: str = "Area") -> str:
    """The NodeSet2 XML of the address space ``twin serve`` builds for ``spec``."""
    from connectors.opcua.server import TwinServer
    from connectors.opcua.uabase import ServerOptions

    with tempfile.TemporaryDirectory(prefix="twin-nodeset-") as tmp:
        options = ServerOptions(pki=Path(tmp) / "pki", security=("none",), allow_anonymous=True)
        twin = TwinServer(spec, options, paused=True, site=site, area=area)
        server = await twin.build()
        try:
            await twin._publish(force=True)
            ns = twin.ns
            nodes = [server.get_node(nid) for nid in list(server.iserver.aspace.keys()) if nid.NamespaceIndex == ns]
            nodes.sort(key=lambda n: str(n.nodeid.Identifier))
            path = Path(tmp) / "export.xml"
            await server.export_xml(nodes, str(path), export_values=True)
            text = path.read_text(encoding="utf-8")
            packml_version = _packml_model()
        finally:
            await server.stop()
    return _add_models(text, twin.namespace_uri, spec, packml_version)


def _packml_model(required: bool = False) -> tuple[str, str]:
    """Version and publication date of the PackML model (or, ``required``, of the OPC UA model it requires),
    from the NodeSet's own header."""
    from connectors.opcua.packml import NODESET

    root = ET.parse(NODESET).getroot()
    model = root.find(f"{{{UA_NS}}}Models/{{{UA_NS}}}Model")
    assert model is not None
    if required:
        model = model.find(f"{{{UA_NS}}}RequiredModel")
        assert model is not None
    return model.get("Version", ""), model.get("PublicationDate", "")


def _add_models(text: str, uri: str, spec: LineSpec, packml: tuple[str, str]) -> str:
    core = _packml_model(required=True)
    """Add the ``Models`` element (the twin's model and what it requires), which asyncua does not write."""
    ET.register_namespace("", UA_NS)
    ET.register_namespace("xsi", "http://www.w3.org/2001/XMLSchema-instance")
    ET.register_namespace("xsd", "http://www.w3.org/2001/XMLSchema")
    root = ET.fromstring(text)
    for old in root.findall(f"{{{UA_NS}}}Models"):
        root.remove(old)
    models = ET.Element(f"{{{UA_NS}}}Models")
    model = ET.SubElement(
        models,
        f"{{{UA_NS}}}Model",
        ModelUri=uri,
        Version=spec.spec_hash[:12],  # the spec the model was built from
        PublicationDate=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    ET.SubElement(
        model,
        f"{{{UA_NS}}}RequiredModel",
        ModelUri="http://opcfoundation.org/UA/",
        Version=core[0],
        PublicationDate=core[1],
    )
    ET.SubElement(
        model, f"{{{UA_NS}}}RequiredModel", ModelUri=PACKML_URI, Version=packml[0], PublicationDate=packml[1]
    )
    _xml_encodings(root)
    children = list(root)
    index = next((i + 1 for i, c in enumerate(children) if c.tag == f"{{{UA_NS}}}NamespaceUris"), 0)
    root.insert(index, models)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml_encodings(root: ET.Element) -> None:
    """ExtensionObject values name their XML encoding (Range: i=885), not their data type (i=884) as asyncua
    writes them: another stack cannot decode them otherwise (OPC 10000-6, 5.3.1.16)."""
    from asyncua import ua

    names = {v: k for k, v in vars(ua.ObjectIds).items() if isinstance(v, int)}
    types_ns = "http://opcfoundation.org/UA/2008/02/Types.xsd"
    for type_id in root.iter(f"{{{types_ns}}}TypeId"):
        ident = type_id.find(f"{{{types_ns}}}Identifier")
        if ident is None:
            continue
        text = (ident.text or "").strip()
        if not text.startswith("i=") or not text[2:].isdigit():
            continue
        name = names.get(int(text[2:]))
        encoding = getattr(ua.ObjectIds, f"{name}_Encoding_DefaultXml", None) if name else None
        if encoding is not None:
            ident.text = f"i={encoding}"


def namespace_uris(text: str) -> list[str]:
    """The NamespaceUris of a NodeSet2 document."""
    root = ET.fromstring(text)
    return [u.text or "" for u in root.iterfind(f"{{{UA_NS}}}NamespaceUris/{{{UA_NS}}}Uri")]

