#include "data/words.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace flashmem::data {
namespace {

// 128 concrete nouns: enough distinct keys for the largest multi-key sample (64 needles).
constexpr std::array<std::string_view, 128> kKeys = {
    "apple",   "anchor",  "arrow",   "badge",   "banner",  "barrel",  "basket",  "beacon",
    "bell",    "bench",   "blanket", "boat",    "bottle",  "bridge",  "bucket",  "button",
    "cabin",   "camera",  "candle",  "canyon",  "carpet",  "castle",  "cellar",  "chair",
    "chimney", "circle",  "clock",   "cloud",   "coast",   "coin",    "comet",   "compass",
    "cottage", "crown",   "crystal", "curtain", "desert",  "diamond", "dragon",  "drum",
    "eagle",   "engine",  "falcon",  "feather", "fence",   "flag",    "forest",  "fountain",
    "garden",  "garlic",  "glacier", "glove",   "hammer",  "harbor",  "helmet",  "island",
    "jacket",  "jungle",  "kettle",  "ladder",  "lantern", "lemon",   "lizard",  "magnet",
    "marble",  "meadow",  "mirror",  "monkey",  "needle",  "nest",    "orchard", "otter",
    "oyster",  "paddle",  "palace",  "parrot",  "pebble",  "pencil",  "pepper",  "piano",
    "pillow",  "planet",  "pocket",  "pond",    "puzzle",  "quilt",   "rabbit",  "radio",
    "ribbon",  "rocket",  "saddle",  "sail",    "shadow",  "shell",   "shovel",  "silver",
    "socket",  "spider",  "spoon",   "statue",  "stone",   "summit",  "sword",   "table",
    "teapot",  "temple",  "thunder", "ticket",  "tiger",   "tower",   "tractor", "trumpet",
    "tunnel",  "turtle",  "umbrella","valley",  "velvet",  "violin",  "wagon",   "wallet",
    "whistle", "window",  "wizard",  "wolf",    "yacht",   "zebra",   "walnut",  "volcano",
};

// 64 adjectives for word values.
constexpr std::array<std::string_view, 64> kValues = {
    "amber",   "ancient", "bitter",  "bold",    "brave",   "bright",  "broken",  "calm",
    "clever",  "cold",    "crimson", "curious", "dark",    "distant", "dusty",   "eager",
    "early",   "empty",   "fancy",   "fierce",  "fragile", "frozen",  "gentle",  "giant",
    "golden",  "graceful","hidden",  "hollow",  "humble",  "icy",     "jolly",   "lazy",
    "little",  "lively",  "lonely",  "loud",    "lucky",   "misty",   "modern",  "narrow",
    "noble",   "odd",     "pale",    "polite",  "proud",   "quiet",   "rapid",   "rare",
    "rusty",   "scarlet", "shiny",   "silent",  "sleepy",  "smooth",  "solid",   "sour",
    "steady",  "sticky",  "swift",   "tender",  "tiny",    "vivid",   "warm",    "wild",
};

// 96 everyday words for the random-word haystack (no keys, no values, no template words).
constexpr std::array<std::string_view, 96> kFiller = {
    "about",  "after",  "again",  "almost", "along",  "always", "animal", "answer", "around",
    "before", "began",  "behind", "below",  "better", "between","big",    "body",   "book",
    "both",   "bring",  "build",  "carry",  "change", "city",   "close",  "color",  "country",
    "cover",  "cross",  "day",    "door",   "down",   "during", "each",   "earth",  "enough",
    "even",   "every",  "family", "far",    "field",  "find",   "first",  "follow", "food",
    "friend", "game",   "give",   "going",  "group",  "hand",   "hard",   "head",   "hear",
    "help",   "high",   "home",   "horse",  "house",  "idea",   "inside", "just",   "keep",
    "kind",   "land",   "large",  "later",  "learn",  "leave",  "letter", "life",   "light",
    "line",   "list",   "long",   "look",   "made",   "many",   "mark",   "might",  "more",
    "morning","mother", "move",   "music",  "near",   "never",  "next",   "night",  "often",
    "open",   "order",  "other",  "paper",  "people", "place",
};

// Noise filler sentences (written for this project).
constexpr std::array<std::string_view, 8> kNoise = {
    "The river runs past the old mill.",
    "Birds sing in the morning light.",
    "The road goes on and on.",
    "Rain falls on the quiet town.",
    "The wind moves over the hills.",
    "A cat sleeps near the warm fire.",
    "Children play in the green park.",
    "The bus comes at noon every day.",
};

// Words of the prompt templates in task.cpp (a test checks no generated word falls outside).
constexpr std::array<std::string_view, 47> kTemplate = {
    "One",      "of",   "the",      "special",  "magic",  "numbers", "number", "words",
    "word",     "ids",  "id",       "for",      "is",     "are",     "Some",   "hidden",
    "in",       "following", "text", "Remember", "them",  "Question", "What", "Answer",
    "The",      "all",  "and",      "VAR",      "Find",   "variables", "that", "assigned",
    "value",    "above","three",    "most",     "frequent", "coded",  "Read",  "list",
    "a",        "count","each",     "Memorize", "chains", "variable", "appear",
};

}  // namespace

std::span<const std::string_view> key_words() { return kKeys; }
std::span<const std::string_view> value_words() { return kValues; }
std::span<const std::string_view> filler_words() { return kFiller; }
std::span<const std::string_view> noise_sentences() { return kNoise; }

std::vector<std::string> generator_words() {
  std::vector<std::string> words;
  auto add_text = [&](std::string_view text) {
    std::string word;
    for (const char c : text) {
      if (std::isalpha(static_cast<unsigned char>(c))) {
        word += c;
      } else if (!word.empty()) {
        words.push_back(word);
        word.clear();
      }
    }
    if (!word.empty()) words.push_back(word);
  };
  for (auto list : {std::span<const std::string_view>(kKeys), std::span<const std::string_view>(kValues),
                    std::span<const std::string_view>(kFiller), std::span<const std::string_view>(kNoise),
                    std::span<const std::string_view>(kTemplate)})
    for (const std::string_view s : list) add_text(s);
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  return words;
}

}  // namespace flashmem::data
