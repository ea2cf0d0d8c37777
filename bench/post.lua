-- wrk: POST one of the bodies in BODIES_FILE (one JSON per line), in turn.
local bodies = {}
local next_body = 1

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  -- each wrk thread starts at a different place in the list
  next_body = (tonumber(args[2]) or 0) % #bodies + 1
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", nil, nil, body)
end
