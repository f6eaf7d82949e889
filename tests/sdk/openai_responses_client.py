"""The official OpenAI SDK's Responses API against glm-proxy: a plain response, a streamed one
read with the SDK's stream helper and as raw events, and a function-tool round trip. Asserts
on content; exits non-zero on failure.

Usage: openai_responses_client.py BASE_URL
"""

import json
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-client", max_retries=0)
TOOLS = [
    {
        "type": "function",
        "name": "weather",
        "description": "The weather now in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
QUESTION = "What is the weather in Paris?"

# A plain response.
plain = client.responses.create(model="glm", instructions="Be brief.", input="Say hello")
assert plain.object == "response" and plain.status == "completed", plain
assert plain.output_text == "Hello from GLM.", plain.output_text
assert [item.type for item in plain.output] == ["reasoning", "message"], plain.output
assert plain.output[0].summary[0].text == "Thinking it over.", plain.output[0]
assert plain.usage.input_tokens == 21 and plain.usage.output_tokens == 5, plain.usage
assert plain.model == "glm"

# A streamed response through the stream helper, which rebuilds the response from the events.
with client.responses.stream(model="glm", tools=TOOLS, input=QUESTION) as stream:
    deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
    final = stream.get_final_response()
assert "".join(deltas) == "Let me look.", deltas
assert final.status == "completed", final
assert [item.type for item in final.output] == ["reasoning", "message", "function_call"], final.output
call = final.output[2]
assert call.call_id == "call_w1" and call.name == "weather", call
assert json.loads(call.arguments) == {"city": "Paris"}, call.arguments
assert final.usage.output_tokens == 12, final.usage

# The same stream as raw events: their types and sequence numbers, in order.
events = list(client.responses.create(model="glm", tools=TOOLS, input=QUESTION, stream=True))
assert events[0].type == "response.created" and events[-1].type == "response.completed", events
assert [event.sequence_number for event in events] == list(range(len(events))), events

# The function's output goes back under the call's id, with the whole history.
answer = client.responses.create(
    model="glm",
    tools=TOOLS,
    input=[
        {"role": "user", "content": QUESTION},
        *[item.model_dump(exclude_none=True) for item in final.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"},
    ],
)
assert answer.output_text == "It is sunny in Paris.", answer.output_text

# Errors arrive as the SDK's typed exceptions.
try:
    client.responses.create(model="gpt-4o", input=QUESTION)
    raise AssertionError("an unknown model was served")
except openai.NotFoundError as error:
    assert error.code == "model_not_found", error.body
try:
    client.responses.create(model="glm", input=QUESTION, previous_response_id="resp_123")
    raise AssertionError("a stored response was continued")
except openai.BadRequestError as error:
    assert error.code == "unsupported_parameter" and error.param == "previous_response_id", error.body

print("openai sdk: ok")
