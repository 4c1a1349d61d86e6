-- Wireshark/tshark dissector for labctl's reliable UDP download (/get;
-- docs/PROTOCOLS.md section 5). Load it with
--   tshark -X lua_script:scripts/rudp.lua -r capture.pcapng -Y lrudp
-- or copy it into Wireshark's personal plugins folder. It claims any UDP
-- datagram that starts with "RU" and version 1 (a heuristic), so the
-- transfer ports need not be configured. (Wireshark has its own "rudp", an
-- unrelated protocol, so this one is "lrudp": filter -Y lrudp, fields lrudp.*.)

local rudp = Proto("lrudp", "labctl reliable UDP download")

local kinds = { [1] = "SYN", [2] = "SYN-ACK", [3] = "ACK", [4] = "DATA", [5] = "SACK",
                [6] = "NACK", [7] = "ACK-ALL", [8] = "RST" }
local algos = { [1] = "seed", [2] = "sack" }

local f = {
  magic    = ProtoField.string("lrudp.magic", "Magic"),
  version  = ProtoField.uint8("lrudp.version", "Version"),
  kind     = ProtoField.uint8("lrudp.kind", "Kind", base.DEC, kinds),
  kindname = ProtoField.string("lrudp.kind_name", "Kind name"),
  tid      = ProtoField.uint32("lrudp.tid", "Transfer id", base.HEX),
  crc      = ProtoField.uint32("lrudp.crc", "CRC-32C", base.HEX),
  window   = ProtoField.uint32("lrudp.window", "Window (ids)"),
  size     = ProtoField.uint64("lrudp.size", "File size"),
  algo     = ProtoField.uint8("lrudp.algo", "Algorithm", base.DEC, algos),
  segsize  = ProtoField.uint16("lrudp.segsize", "Segment size"),
  id       = ProtoField.uint32("lrudp.id", "Segment id"),
  tx       = ProtoField.uint32("lrudp.tx", "Transmission"),
  ts       = ProtoField.uint64("lrudp.ts", "Sender clock (ns)"),
  offset   = ProtoField.uint64("lrudp.offset", "Offset"),
  payload  = ProtoField.bytes("lrudp.payload", "Payload"),
  paylen   = ProtoField.uint32("lrudp.payload_len", "Payload length"),
  cum      = ProtoField.uint32("lrudp.cum", "Cumulative (ids below held)"),
  received = ProtoField.uint32("lrudp.received", "DATA received"),
  recvts   = ProtoField.uint64("lrudp.recv_ts", "Receiver clock (ns)"),
  nranges  = ProtoField.uint16("lrudp.nranges", "SACK ranges"),
  rstart   = ProtoField.uint32("lrudp.range_start", "Range start"),
  rend     = ProtoField.uint32("lrudp.range_end", "Range end"),
  sha      = ProtoField.bytes("lrudp.sha256", "SHA-256"),
  reason   = ProtoField.string("lrudp.reason", "Reason"),
}
local list = {}
for _, v in pairs(f) do list[#list + 1] = v end
rudp.fields = list

local function dissect(buf, pinfo, root)
  if buf:len() < 12 or buf(0, 2):string() ~= "RU" or buf(2, 1):uint() ~= 1 then
    return 0
  end
  local kind = buf(3, 1):uint()
  local name = kinds[kind] or ("kind " .. kind)
  pinfo.cols.protocol = "LRUDP"
  local t = root:add(rudp, buf(), "labctl RUDP " .. name)
  t:add(f.magic, buf(0, 2))
  t:add(f.version, buf(2, 1))
  t:add(f.kind, buf(3, 1))
  t:add(f.kindname, name)
  t:add(f.tid, buf(4, 4))
  t:add(f.crc, buf(8, 4))
  local b, n = 12, buf:len() - 12
  local info = name
  if kind == 1 and n >= 4 then
    t:add(f.window, buf(b, 4))
  elseif kind == 2 and n >= 16 then
    t:add(f.size, buf(b, 8)); t:add(f.algo, buf(b + 8, 1)); t:add(f.segsize, buf(b + 10, 2)); t:add(f.window, buf(b + 12, 4))
    info = info .. " size=" .. buf(b, 8):uint64():tonumber() .. " " .. (algos[buf(b + 8, 1):uint()] or "?")
  elseif kind == 4 and n >= 24 then
    t:add(f.id, buf(b, 4)); t:add(f.tx, buf(b + 4, 4)); t:add(f.ts, buf(b + 8, 8)); t:add(f.offset, buf(b + 16, 8))
    t:add(f.paylen, n - 24)
    if n > 24 then t:add(f.payload, buf(b + 24, n - 24)) end
    info = info .. " id=" .. buf(b, 4):uint() .. " off=" .. buf(b + 16, 8):uint64():tonumber() .. " len=" .. (n - 24)
  elseif kind == 5 and n >= 34 then
    t:add(f.cum, buf(b, 4)); t:add(f.id, buf(b + 4, 4)); t:add(f.tx, buf(b + 8, 4)); t:add(f.ts, buf(b + 12, 8))
    t:add(f.received, buf(b + 20, 4)); t:add(f.recvts, buf(b + 24, 8)); t:add(f.nranges, buf(b + 32, 2))
    local k = buf(b + 32, 2):uint()
    local rs = ""
    for i = 0, k - 1 do
      local o = b + 34 + 8 * i
      if o + 8 <= buf:len() then
        local r = t:add(buf(o, 8), "Range")
        r:add(f.rstart, buf(o, 4)); r:add(f.rend, buf(o + 4, 4))
        rs = rs .. " [" .. buf(o, 4):uint() .. "," .. buf(o + 4, 4):uint() .. ")"
      end
    end
    info = info .. " cum=" .. buf(b, 4):uint() .. " id=" .. buf(b + 4, 4):uint() .. rs
  elseif kind == 6 and n >= 4 then
    t:add(f.id, buf(b, 4))
    info = info .. " id=" .. buf(b, 4):uint()
  elseif kind == 7 and n >= 40 then
    t:add(f.size, buf(b, 8)); t:add(f.sha, buf(b + 8, 32))
  elseif kind == 8 then
    if n > 0 then t:add(f.reason, buf(b, n)) end
  end
  pinfo.cols.info = info
  return buf:len()
end

function rudp.dissector(buf, pinfo, root) return dissect(buf, pinfo, root) end

rudp:register_heuristic("udp", function(buf, pinfo, root) return dissect(buf, pinfo, root) > 0 end)
