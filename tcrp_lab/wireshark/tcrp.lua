-- TCRP (Talk Chat Room Protocol) for Wireshark: the dissector of tcrp_lab, from docs/TCRP.md.
--
-- Install: python -m tcrp_lab.wireshark --install  (copies this file into Wireshark's personal
-- plugin folder), or run once: tshark -X lua_script:tcrp.lua -r chat.pcapng
--
-- TCP (§2, §6): frames `length u32 | body`, reassembled across segments; the ServerHello of
-- versions 2 and 3 (and the refusal, version 0), the ClientKeyExchange, the encrypted record
-- `ciphertext | tag`; TCRP/1's PEM key, RSA blob and AES-CFB frames. UDP (§4, §6): the datagram
-- header `RoomNameSize | TokenSize | RoomName | Token | seq | ciphertext | tag`, or TCRP/1's
-- `... | Token | AES-CFB(text)`.
--
-- Nothing is decrypted here. A capture written by tcrp_lab (Trace.save_pcapng) carries the
-- plaintext each side knew in a packet comment "tcrp-plaintext: HEX"; it is dissected as a second
-- data source, "Decrypted TCRP": the 32-byte message header of §3, or a datagram's JSON.
--
-- Ports come from the preferences (TCP 9001, UDP 9002), and a heuristic finds TCRP on any port.
-- Expert info: a TCRP/1 session's repeated key and IV, a TCRP/1 token in clear, a replayed seq.

local tcrp = Proto("tcrp", "Talk Chat Room Protocol")

local OPS = { [1] = "CREATE_ROOM", [2] = "JOIN_ROOM", [3] = "LIST_ROOMS" }
local STATES = { [0] = "REQUEST", [1] = "RESPONSE", [2] = "COMPLETE" }
local MAX_FRAME = 65536      -- §2: 1 <= length <= 65536
local TAG = 16               -- AES-OCB tag (§2.4, §4)
local TOKEN2 = 16            -- TCRP/2 token (§4)
local TOKEN1 = 255           -- TCRP/1 token (§6)
local HEADER = 32            -- the message header (§3)
local PLAINTEXT_TAG = "tcrp-plaintext: "

local f = {
    length = ProtoField.uint32("tcrp.length", "Frame length", base.DEC),
    kind = ProtoField.string("tcrp.kind", "Kind"),
    profile = ProtoField.string("tcrp.profile", "Profile"),
    magic = ProtoField.string("tcrp.magic", "Magic"),
    version = ProtoField.uint8("tcrp.version", "Version", base.DEC),
    nonce = ProtoField.bytes("tcrp.nonce", "Server nonce"),
    server_share = ProtoField.bytes("tcrp.server_share", "Server share (X25519)"),
    sig_len = ProtoField.uint16("tcrp.sig_len", "Signature length", base.DEC),
    signature = ProtoField.bytes("tcrp.signature", "Signature (RSA-PSS)"),
    pubkey = ProtoField.bytes("tcrp.pubkey", "Server public key (SubjectPublicKeyInfo DER)"),
    refusal = ProtoField.string("tcrp.refusal", "Refusal (JSON)"),
    pem = ProtoField.string("tcrp.pem", "Server public key (PEM)"),
    key_exchange = ProtoField.bytes("tcrp.key_exchange", "Encrypted key (RSA-OAEP)"),
    client_share = ProtoField.bytes("tcrp.client_share", "Client share (X25519)"),
    record_seq = ProtoField.uint32("tcrp.record_seq", "Record seq (implicit: the nonce)", base.DEC),
    ciphertext = ProtoField.bytes("tcrp.ciphertext", "Ciphertext"),
    tag = ProtoField.bytes("tcrp.tag", "Tag (AES-OCB)"),
    room_size = ProtoField.uint8("tcrp.room_size", "RoomNameSize", base.DEC),
    token_size = ProtoField.uint8("tcrp.token_size", "TokenSize", base.DEC),
    room = ProtoField.string("tcrp.room", "RoomName"),
    token = ProtoField.bytes("tcrp.token", "Token"),
    seq = ProtoField.uint64("tcrp.seq", "Seq", base.DEC),
    op = ProtoField.uint8("tcrp.op", "Operation", base.DEC, OPS),
    state = ProtoField.uint8("tcrp.state", "State", base.DEC, STATES),
    payload_size = ProtoField.uint64("tcrp.payload_size", "OperationPayloadSize", base.DEC),
    payload = ProtoField.string("tcrp.payload", "Payload (JSON)"),
    type = ProtoField.string("tcrp.type", "Datagram type"),
    text = ProtoField.string("tcrp.text", "Text"),
    reply = ProtoField.bytes("tcrp.reply", "TCRP/1 reply"),
    plaintext = ProtoField.bytes("tcrp.plaintext", "Plaintext (from the capture's comment)"),
}
tcrp.fields = f

local e = {
    iv_reuse = ProtoExpert.new("tcrp.iv_reuse", "TCRP/1: the same key and IV as an earlier message (keystream reuse)",
        expert.group.SECURITY, expert.severity.WARN),
    token_clear = ProtoExpert.new("tcrp.token_in_clear", "TCRP/1: the session token in clear text",
        expert.group.SECURITY, expert.severity.WARN),
    replay = ProtoExpert.new("tcrp.replayed_seq", "Replayed seq: this datagram was seen before",
        expert.group.SECURITY, expert.severity.WARN),
    bad_length = ProtoExpert.new("tcrp.bad_length", "Frame length out of range (1-65536)",
        expert.group.MALFORMED, expert.severity.ERROR),
    short = ProtoExpert.new("tcrp.short", "Shorter than its layout", expert.group.MALFORMED, expert.severity.ERROR),
}
tcrp.experts = e

tcrp.prefs.tcp_port = Pref.uint("TCP port", 9001, "The TCRP control port (TCRP.md §1)")
tcrp.prefs.udp_port = Pref.uint("UDP port", 9002, "The TCRP chat port (TCRP.md §1)")

local f_comment = Field.new("frame.comment")

-- State built on the first pass, keyed so that later passes find the same answers.
local conversations, pdus, datagrams, seen_datagrams, legacy_tokens

local function reset()
    conversations, pdus, datagrams, seen_datagrams, legacy_tokens = {}, {}, {}, {}, {}
end
tcrp.init = reset   -- a new capture starts with nothing seen
reset()

local function endpoint(addr, port) return tostring(addr) .. ":" .. tostring(port) end

local function plaintext_of(pinfo)
    -- The hex the capture's writer attached; nil when the packet has none.
    for _, fi in ipairs({ f_comment() }) do
        local value = fi.value
        if type(value) == "string" and value:sub(1, #PLAINTEXT_TAG) == PLAINTEXT_TAG then
            local ok, bytes = pcall(ByteArray.new, value:sub(#PLAINTEXT_TAG + 1))
            if ok and bytes:len() > 0 then return bytes end
        end
    end
    return nil
end

local function utf8_string(range)
    return range:string(ENC_UTF_8)
end

-- §3: the message header and its room name and payload (plaintext of a TCRP/2 record or TCRP/1 frame).
local function dissect_message(tvb, tree)
    if tvb:len() < HEADER then
        tree:add_proto_expert_info(e.short, "a message needs the 32-byte header")
        return nil
    end
    local rs = tvb(0, 1):uint()
    local op, state = tvb(1, 1):uint(), tvb(2, 1):uint()
    local size = tvb(3 + 21, 8):uint64()
    local sub = tree:add(tcrp, tvb(), "TCRP message (§3)")
    sub:add(f.room_size, tvb(0, 1))
    sub:add(f.op, tvb(1, 1))
    sub:add(f.state, tvb(2, 1))
    sub:add(f.payload_size, tvb(3, 29), size)
    local room = ""
    if tvb:len() >= HEADER + rs then
        room = utf8_string(tvb(HEADER, rs))
        if rs > 0 then sub:add(f.room, tvb(HEADER, rs), room) else sub:add(f.room, tvb(HEADER, 0), "") end
        if tvb:len() > HEADER + rs then sub:add(f.payload, tvb(HEADER + rs), utf8_string(tvb(HEADER + rs))) end
    else
        sub:add_proto_expert_info(e.short, "the room name is cut")
    end
    return string.format("%s %s %q", OPS[op] or ("op " .. op), STATES[state] or ("state " .. state), room)
end

local function dissect_json(tvb, tree)
    local text = utf8_string(tvb())
    local sub = tree:add(tcrp, tvb(), "TCRP datagram payload (§4)")
    sub:add(f.payload, tvb(), text)
    local kind = text:match('"type"%s*:%s*"([%w_]+)"')
    if kind then sub:add(f.type, tvb(), kind) end
    return kind
end

-- --- TCP ------------------------------------------------------------------------------------

local function conversation(pinfo)
    local a, b = endpoint(pinfo.src, pinfo.src_port), endpoint(pinfo.dst, pinfo.dst_port)
    local key = a < b and (a .. " " .. b) or (b .. " " .. a)
    local conv = conversations[key]
    if not conv then
        conv = { records = { c2s = 0, s2c = 0 } }
        conversations[key] = conv
    end
    return conv
end

local function starts(tvb, text)
    return tvb:len() >= 4 + #text and tvb(4, #text):string() == text
end

-- First pass: what this frame is, from the conversation so far (later passes read it back).
local function classify(tvb, pinfo)
    local id = tostring(pinfo.number) .. ":" .. tostring(tvb:offset())
    local info = pdus[id]
    if info then return info end
    local conv = conversation(pinfo)
    local src = endpoint(pinfo.src, pinfo.src_port)
    info = {}
    if not conv.server and (starts(tvb, "TCRP") or starts(tvb, "-----BEGIN")) then
        conv.server = src
        if starts(tvb, "-----BEGIN") then conv.profile = "TCRP/1"
        else conv.profile = "TCRP/" .. tostring(tvb(8, 1):uint()) end
        info.kind = conv.profile == "TCRP/0" and "Refusal" or "ServerHello"
    end
    local c2s
    if conv.server then c2s = src ~= conv.server else c2s = pinfo.dst_port == tcrp.prefs.tcp_port end
    info.dir = c2s and "c2s" or "s2c"
    info.profile = conv.profile
    if not info.kind then
        if c2s and not conv.ckx then
            conv.ckx = id
            info.kind = "ClientKeyExchange"
        else
            info.kind = "Record"
            info.n = conv.records[info.dir]
            conv.records[info.dir] = info.n + 1
            if conv.profile == "TCRP/1" then
                info.first = conv.first_encrypted
                conv.first_encrypted = conv.first_encrypted or pinfo.number
            end
        end
    end
    pdus[id] = info
    return info
end

local function dissect_frame(tvb, pinfo, tree)
    pinfo.cols.protocol = "TCRP"
    local info = classify(tvb, pinfo)
    local length = tvb(0, 4):uint()
    local root = tree:add(tcrp, tvb(), "Talk Chat Room Protocol, frame")
    root:add(f.length, tvb(0, 4))
    if length < 1 or length > MAX_FRAME then
        root:add_proto_expert_info(e.bad_length)
        return tvb:len()
    end
    local body = tvb(4):tvb()
    local profile = info.profile or "TCRP"
    root:add(f.profile, profile):set_generated()
    root:add(f.kind, info.kind):set_generated()
    local arrow = info.dir == "c2s" and "C→S" or "S→C"
    local summary = info.kind
    if info.kind == "ServerHello" and profile == "TCRP/1" then
        root:add(f.pem, body(), utf8_string(body()))
        summary = "ServerHello (TCRP/1: RSA key in PEM)"
    elseif info.kind == "ServerHello" or info.kind == "Refusal" then
        root:add(f.magic, body(0, 4))
        root:add(f.version, body(4, 1))
        local version = body(4, 1):uint()
        summary = info.kind .. " v" .. version
        if version == 0 then
            root:add(f.refusal, body(5), utf8_string(body(5)))
        elseif body:len() < 21 then
            root:add_proto_expert_info(e.short, "a ServerHello has a 16-byte nonce")
        else
            root:add(f.nonce, body(5, 16))
            local at = 21
            if version == 3 then   -- issue 15: server_share 32 | sig_len u16 | signature | key DER
                if body:len() < at + 34 then
                    root:add_proto_expert_info(e.short, "a version 3 ServerHello has a share and a signature length")
                    return tvb:len()
                end
                root:add(f.server_share, body(at, 32))
                local sig = body(at + 32, 2):uint()
                root:add(f.sig_len, body(at + 32, 2))
                at = at + 34
                if body:len() < at + sig then
                    root:add_proto_expert_info(e.short, "the signature is cut")
                    return tvb:len()
                end
                if sig > 0 then root:add(f.signature, body(at, sig)) end
                at = at + sig
            end
            if body:len() > at then root:add(f.pubkey, body(at)) end
        end
    elseif info.kind == "ClientKeyExchange" then
        if profile == "TCRP/3" or body:len() == 32 then
            root:add(f.client_share, body())
        else
            root:add(f.key_exchange, body())
        end
    else
        root:add(f.record_seq, info.n):set_generated()
        if profile == "TCRP/1" then
            root:add(f.ciphertext, body())
            if info.first then
                root:add_proto_expert_info(e.iv_reuse, "TCRP/1: the same AES key and IV as frame " .. info.first ..
                    " of this connection: equal plaintext starts give equal ciphertext starts")
            end
        elseif body:len() < TAG then
            root:add_proto_expert_info(e.short, "a record ends with a 16-byte tag")
        else
            if body:len() > TAG then root:add(f.ciphertext, body(0, body:len() - TAG)) end
            root:add(f.tag, body(body:len() - TAG, TAG))
        end
        summary = "record #" .. info.n
        local plain = plaintext_of(pinfo)
        if plain then
            local ptvb = plain:tvb("Decrypted TCRP")
            root:add(f.plaintext, ptvb())
            local what
            if profile == "TCRP/1" and info.dir == "s2c" then   -- §6: a token, a room list, or a refusal
                root:add(f.reply, ptvb())
                what = "reply, " .. ptvb:len() .. " bytes"
                local raw = ptvb():raw()
                if not raw:find("[%z\1-\31\127-\255]") then
                    root:add(f.text, ptvb(), raw)
                    what = string.format("reply %q", raw)
                end
            else
                what = dissect_message(ptvb, root)
            end
            if what then summary = summary .. " " .. what end
        end
    end
    pinfo.cols.info:append(string.format(" [%s %s %s]", profile, arrow, summary))
    return tvb:len()
end

local function frame_length(tvb, pinfo, offset)
    local length = tvb(offset, 4):uint()
    if length < 1 or length > MAX_FRAME then return tvb:len() - offset end   -- no resync: the rest is bad
    return length + 4
end

local tcrp_udp   -- defined below

function tcrp.dissector(tvb, pinfo, tree)
    if pinfo.port_type == 3 then   -- UDP (port_type: 2 TCP, 3 UDP)
        return tcrp_udp(tvb, pinfo, tree)
    end
    dissect_tcp_pdus(tvb, tree, 4, frame_length, dissect_frame, true)
    return tvb:len()
end

-- --- UDP ------------------------------------------------------------------------------------

local function datagram_state(pinfo, token_hex, seq_text, tag_hex, legacy)
    local state = datagrams[pinfo.number]
    if state then return state end
    state = {}
    if legacy then
        state.first = legacy_tokens[token_hex]
        legacy_tokens[token_hex] = legacy_tokens[token_hex] or pinfo.number
    else   -- the same session, seq and tag to the same place: the very datagram again (a relay hop goes elsewhere)
        local key = table.concat({ token_hex, seq_text, tag_hex, endpoint(pinfo.dst, pinfo.dst_port) }, "|")
        state.replay_of = seen_datagrams[key]
        seen_datagrams[key] = seen_datagrams[key] or pinfo.number
    end
    datagrams[pinfo.number] = state
    return state
end

tcrp_udp = function(tvb, pinfo, tree)
    pinfo.cols.protocol = "TCRP"
    local root = tree:add(tcrp, tvb(), "Talk Chat Room Protocol, datagram")
    root:add(f.kind, "Datagram"):set_generated()
    if tvb:len() == 8 and tvb():string() == "Timeout!" then   -- §6: the original's bare notice
        root:add(f.profile, "TCRP/1"):set_generated()
        root:add(f.text, tvb(), "Timeout!")
        pinfo.cols.info = "TCRP/1 bare notice: Timeout!"
        return tvb:len()
    end
    if tvb:len() < 2 then
        root:add_proto_expert_info(e.short, "a datagram starts with RoomNameSize and TokenSize")
        return tvb:len()
    end
    local rs, ts = tvb(0, 1):uint(), tvb(1, 1):uint()
    local legacy = ts ~= TOKEN2
    local profile = legacy and "TCRP/1" or "TCRP/2"
    root:add(f.profile, profile):set_generated()
    root:add(f.room_size, tvb(0, 1))
    root:add(f.token_size, tvb(1, 1))
    local need = 2 + rs + ts + (legacy and 0 or 8 + TAG)
    if tvb:len() < need then
        root:add_proto_expert_info(e.short, "shorter than its RoomNameSize and TokenSize announce")
        return tvb:len()
    end
    local room = utf8_string(tvb(2, rs))
    root:add(f.room, tvb(2, rs), room)
    local token = tvb(2 + rs, ts)
    local token_item = root:add(f.token, token)
    local at = 2 + rs + ts
    local summary
    if legacy then
        token_item:add_proto_expert_info(e.token_clear,
            "TCRP/1: the session token in clear: whoever sees this datagram can speak as this member")
        if tvb:len() > at then root:add(f.ciphertext, tvb(at)) end
        local state = datagram_state(pinfo, tostring(token:bytes()), "", "", true)
        if state.first then
            root:add_proto_expert_info(e.iv_reuse, "TCRP/1: this session's key and IV encrypted frame " ..
                state.first .. " too: the same keystream (XOR two ciphertexts = XOR of the plaintexts)")
        end
        summary = string.format("room=%q", room)
    else
        local seq = tvb(at, 8):uint64()
        root:add(f.seq, tvb(at, 8))
        local body = tvb:len() - at - 8 - TAG
        if body > 0 then root:add(f.ciphertext, tvb(at + 8, body)) end
        local tag = tvb(tvb:len() - TAG, TAG)
        root:add(f.tag, tag)
        local state = datagram_state(pinfo, tostring(token:bytes()), tostring(seq), tostring(tag:bytes()), false)
        if state.replay_of then
            root:add_proto_expert_info(e.replay, "Replayed seq " .. tostring(seq) .. ": the same datagram as frame " ..
                state.replay_of .. " (the receiver's window drops it, §4)")
        end
        summary = string.format("seq=%s room=%q", tostring(seq), room)
    end
    local plain = plaintext_of(pinfo)
    if plain then
        local ptvb = plain:tvb("Decrypted TCRP")
        root:add(f.plaintext, ptvb())
        if legacy then
            local text = utf8_string(ptvb())
            root:add(f.text, ptvb(), text)
            summary = summary .. string.format(" %q", text)
        else
            local kind = dissect_json(ptvb, root)
            if kind then summary = summary .. " " .. kind end
        end
    end
    pinfo.cols.info = string.format("%s datagram %s", profile, summary)
    return tvb:len()
end

-- --- finding TCRP -----------------------------------------------------------------------------

local function printable(range)
    local text = range:raw()
    return not text:find("[%z\1-\31\127]")
end

local function heur_udp(tvb, pinfo, tree)
    local n = tvb:len()
    if n == 8 and tvb():string() == "Timeout!" then tcrp_udp(tvb, pinfo, tree) return true end
    if n < 2 then return false end
    local rs, ts = tvb(0, 1):uint(), tvb(1, 1):uint()
    if rs < 1 then return false end
    if ts == TOKEN2 then
        if n < 2 + rs + TOKEN2 + 8 + TAG then return false end
    elseif ts == TOKEN1 then
        if n < 2 + rs + TOKEN1 + 1 then return false end
    else
        return false
    end
    if not printable(tvb(2, rs)) then return false end
    tcrp_udp(tvb, pinfo, tree)
    return true
end

local function heur_tcp(tvb, pinfo, tree)
    if tvb:len() < 9 then return false end
    local length = tvb(0, 4):uint()
    if length < 5 or length > MAX_FRAME then return false end
    local magic = tvb(4, 4):string()
    local hello = magic == "TCRP" and ({ [0] = true, [2] = true, [3] = true })[tvb(8, 1):uint()]
    local legacy = tvb:len() >= 14 and tvb(4, 10):string() == "-----BEGIN"
    if not (hello or legacy) then return false end
    pinfo.conversation = tcrp
    tcrp.dissector(tvb, pinfo, tree)
    return true
end

local registered = {}
local function register_ports()
    local tcp_table, udp_table = DissectorTable.get("tcp.port"), DissectorTable.get("udp.port")
    if registered.tcp then tcp_table:remove(registered.tcp, tcrp) end
    if registered.udp then udp_table:remove(registered.udp, tcrp) end
    registered.tcp, registered.udp = tcrp.prefs.tcp_port, tcrp.prefs.udp_port
    if registered.tcp > 0 then tcp_table:add(registered.tcp, tcrp) end
    if registered.udp > 0 then udp_table:add(registered.udp, tcrp) end
end

function tcrp.prefs_changed() register_ports() end

register_ports()
tcrp:register_heuristic("udp", heur_udp)
tcrp:register_heuristic("tcp", heur_tcp)
