// Drives a running `flashmem serve` with the official `openai` npm client (pinned in
// package.json): the model list, a completion, a chat completion, the same chat streamed with
// stream_options.include_usage, and a request the server must refuse. Prints one JSON object
// with what came back; tests/model/test_server_openai_npm.cpp checks it.
//
//   node openai_client.mjs BASE_URL API_KEY PROMPT_FILE MAX_TOKENS
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [baseURL, apiKey, promptFile, maxTokensText] = process.argv.slice(2);
const prompt = readFileSync(promptFile, 'utf8');
const maxTokens = Number(maxTokensText);
// No retries: a failure must show, not be papered over.
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });

const out = {};
const models = await client.models.list();
out.models = models.data.map((m) => m.id);
const model = out.models[0];

const completion = await client.completions.create({ model, prompt, max_tokens: maxTokens, temperature: 0 });
out.completion = completion.choices[0].text;
out.completion_finish = completion.choices[0].finish_reason;
out.completion_usage = completion.usage;

const messages = [{ role: 'user', content: prompt }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: maxTokens, temperature: 0 });
out.chat = chat.choices[0].message.content;
out.chat_role = chat.choices[0].message.role;
out.chat_usage = chat.usage;

const stream = await client.chat.completions.create({
  model, messages, max_tokens: maxTokens, temperature: 0, stream: true,
  stream_options: { include_usage: true },
});
out.chat_stream = '';
out.chat_stream_chunks = 0;
for await (const chunk of stream) {
  out.chat_stream_chunks += 1;
  if (chunk.usage) out.chat_stream_usage = chunk.usage;
  for (const choice of chunk.choices) out.chat_stream += choice.delta?.content ?? '';
}

try {
  await client.completions.create({ model, prompt, max_tokens: -1 });
  out.refused = null;
} catch (e) {
  out.refused = { status: e.status, param: e.param ?? e.error?.param ?? null };
}

console.log(JSON.stringify(out));
