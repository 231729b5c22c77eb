import { randomInt } from "node:crypto";

// Docker's generated names are "adjective_surname"; a short list of each is enough
// for readable, mostly unique names (a taken one is retried by the caller).
const LEFT = [
  "admiring", "adoring", "affectionate", "amazing", "awesome", "blissful", "bold", "brave", "charming", "clever",
  "compassionate", "competent", "confident", "cool", "dazzling", "determined", "eager", "ecstatic", "elastic", "elegant",
  "eloquent", "epic", "exciting", "fervent", "festive", "focused", "friendly", "frosty", "funny", "gallant",
  "gifted", "goofy", "gracious", "happy", "hopeful", "hungry", "inspiring", "intelligent", "interesting", "jolly",
  "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing", "mystifying",
  "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pensive", "practical", "priceless", "quirky",
  "quizzical", "relaxed", "reverent", "romantic", "serene", "sharp", "silly", "sleepy", "stoic", "strange",
  "sweet", "tender", "thirsty", "trusting", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful",
  "xenodochial", "youthful", "zealous", "zen",
];
const RIGHT = [
  "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bell", "bhabha", "blackwell", "bohr",
  "booth", "borg", "bose", "brahmagupta", "cannon", "carson", "cerf", "chandrasekhar", "chatterjee", "clarke",
  "curie", "darwin", "davinci", "diffie", "dijkstra", "einstein", "elion", "engelbart", "euclid", "euler",
  "fermat", "fermi", "feynman", "franklin", "galileo", "gates", "goldberg", "goodall", "hamilton", "hawking",
  "heisenberg", "hopper", "hypatia", "johnson", "kalam", "kepler", "khorana", "knuth", "lamarr", "lamport",
  "leakey", "lovelace", "lumiere", "mahavira", "mayer", "mccarthy", "meitner", "mendel", "morse", "napier",
  "newton", "noether", "pascal", "pasteur", "perlman", "pike", "poincare", "ramanujan", "ritchie", "shannon",
  "shockley", "sinoussi", "stonebraker", "swanson", "tesla", "thompson", "torvalds", "turing", "wilson", "wozniak",
  "wright", "yalow", "yonath",
];

export function generateName(): string {
  return `${LEFT[randomInt(LEFT.length)]}_${RIGHT[randomInt(RIGHT.length)]}`;
}

/** Docker's rule for container names. */
export const VALID_CONTAINER_NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
