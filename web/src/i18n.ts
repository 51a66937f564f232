// The app's words in English and French: the language of the browser at first, switchable
// (and remembered). English text is the key; a missing translation falls back to it.
// `{name}` in a text is replaced by the parameter of that name.

export type Language = "en" | "fr";

const fr: Record<string, string> = {
  "Starting Missive…": "Démarrage de Missive…",
  "Missive is open in another tab.": "Missive est ouvert dans un autre onglet.",
  "Use here": "Utiliser ici",
  "Missive is now open in another tab. Close this one.":
    "Missive est maintenant ouvert dans un autre onglet. Fermez celui-ci.",
  "Create your account on your organisation's server.":
    "Créez votre compte sur le serveur de votre organisation.",
  Server: "Serveur",
  Address: "Adresse",
  "Invite code": "Code d'invitation",
  Register: "S'inscrire",
  "Registering…": "Inscription…",
  "Link to an existing account": "Lier à un compte existant",
  "Create a new account instead": "Créer plutôt un nouveau compte",
  "Recover an account (every device lost)": "Récupérer un compte (tous les appareils perdus)",
  "Lost every device? Type the recovery key you wrote down when you registered. Your other devices will be taken off your account.":
    "Tous vos appareils sont perdus ? Saisissez la clé de récupération notée à votre inscription. Vos autres appareils seront retirés de votre compte.",
  "Recovery key": "Clé de récupération",
  "Recovering…": "Récupération…",
  "Recover account": "Récupérer le compte",
  "Your recovery key": "Votre clé de récupération",
  "If you lose every device, this key is the only way back into your account. Write it down or print it, and keep it somewhere safe. It will not be shown again.":
    "Si vous perdez tous vos appareils, cette clé est le seul moyen de retrouver votre compte. Notez-la ou imprimez-la, et conservez-la en lieu sûr. Elle ne sera plus affichée.",
  "Print": "Imprimer",
  "I have written down my recovery key": "J'ai noté ma clé de récupération",
  "Continue": "Continuer",
  "Back up message history with the recovery key": "Sauvegarder l'historique des messages avec la clé de récupération",
  "Link code": "Code de liaison",
  "Link this browser": "Lier ce navigateur",
  "Linking… (keep the other device open)": "Liaison… (gardez l'autre appareil ouvert)",
  "Use the account of another device: on it, choose “Link a new device” (or run {command}), then scan the QR code it shows or type its code.":
    "Utilisez le compte d'un autre appareil : sur celui-ci, choisissez « Lier un nouvel appareil » (ou lancez {command}), puis scannez le QR code affiché ou saisissez son code.",
  "Scan the QR code": "Scanner le QR code",
  "Stop scanning": "Arrêter de scanner",
  Camera: "Caméra",
  "Point the camera at the QR code the other device shows.":
    "Dirigez la caméra vers le QR code affiché par l'autre appareil.",
  "This QR code is not a Missive link code.": "Ce QR code n'est pas un code de liaison Missive.",
  "This browser gives no access to a camera here: type the code instead.":
    "Ce navigateur ne donne pas accès à une caméra ici : saisissez plutôt le code.",
  "The camera may not be used: allow it in the browser's settings, or type the code instead.":
    "La caméra ne peut pas être utilisée : autorisez-la dans les réglages du navigateur, ou saisissez plutôt le code.",
  "No camera was found: type the code instead.": "Aucune caméra trouvée : saisissez plutôt le code.",
  Devices: "Appareils",
  "Enable notifications": "Activer les notifications",
  Language: "Langue",
  "Offline: messages will be sent when the connection is back":
    "Hors ligne : les messages partiront au retour de la connexion",
  "Security alerts": "Alertes de sécurité",
  "A device that its owner never approved was offered by the server. Nothing was sent to it: someone may be trying to listen in.":
    "Le serveur a proposé un appareil que son propriétaire n'a jamais approuvé. Rien ne lui a été envoyé : quelqu'un tente peut-être d'écouter.",
  "The server handed over keys that do not belong to the person's devices. Nothing was sent with them.":
    "Le serveur a fourni des clés qui n'appartiennent pas aux appareils de la personne. Rien n'a été envoyé avec elles.",
  "A contact's identity key changed. Nothing is sent to them until you compare safety numbers with them and accept the new key.":
    "La clé d'identité d'un contact a changé. Rien ne lui est envoyé tant que vous n'avez pas comparé vos numéros de sécurité et accepté la nouvelle clé.",
  "A message could not be checked as genuine and was not shown.":
    "Un message n'a pas pu être authentifié et n'a pas été affiché.",
  "A change to a conversation's members could not be checked as genuine and was refused.":
    "Un changement des membres d'une conversation n'a pas pu être authentifié et a été refusé.",
  "The server showed this conversation differently to different members: it may be trying to split it.":
    "Le serveur a montré cette conversation différemment à différents membres : il tente peut-être de la scinder.",
  "A device link was tampered with and was refused.":
    "Une liaison d'appareil a été falsifiée et a été refusée.",
  "The server held back messages: some were never delivered to this device.":
    "Le serveur a retenu des messages : certains n'ont jamais été remis à cet appareil.",
  "The server held back a message and delivered it late. It is shown all the same.":
    "Le serveur a retenu un message et l'a remis en retard. Il est tout de même affiché.",
  "The server showed a list of someone's devices that they never signed. It was refused.":
    "Le serveur a montré une liste d'appareils qu'une personne n'a jamais signée. Elle a été refusée.",
  "The server showed an older list of someone's devices (where a removed device could come back). It was refused.":
    "Le serveur a montré une ancienne liste des appareils d'une personne (où un appareil retiré pourrait revenir). Elle a été refusée.",
  "A device that is not on its owner's own list (removed, or added by the server) was refused.":
    "Un appareil absent de la liste de son propriétaire (retiré, ou ajouté par le serveur) a été refusé.",
  "The server hid one of someone's devices from a conversation; their own devices will add it.":
    "Le serveur a caché un appareil d'une personne dans une conversation ; ses propres appareils l'ajouteront.",
  "The server's key directory could not prove what it showed. It was not trusted.":
    "L'annuaire de clés du serveur n'a pas pu prouver ce qu'il montrait. Il n'a pas été cru.",
  "The server's key directory holds a key in your name that is not yours: someone may be trying to pass as you.":
    "L'annuaire de clés du serveur contient une clé à votre nom qui n'est pas la vôtre : quelqu'un tente peut-être de se faire passer pour vous.",
  "The server shows different key directories to different people: it may be showing false keys to some.":
    "Le serveur montre des annuaires de clés différents à différentes personnes : il montre peut-être de fausses clés à certains.",
  "Details":
    "Détails",
  Conversations: "Conversations",
  "New conversation": "Nouvelle conversation",
  "Filter conversations": "Filtrer les conversations",
  Filter: "Filtrer",
  "{n} unread": "{n} non lus",
  "Choose a conversation, or start a new one.":
    "Choisissez une conversation, ou commencez-en une.",
  "Conversation {id}": "Conversation {id}",
  "A message this version cannot display (update Missive)":
    "Un message que cette version ne sait pas afficher (mettez Missive à jour)",
  "Back to conversations": "Retour aux conversations",
  "Safety number": "Numéro de sécurité",
  "The identity key of {address} changed: this is the safety number of the new key. Accept it only if {address} shows the same digits, in person or on a call you trust. A key you did not expect may mean that someone is trying to read your messages.":
    "La clé d'identité de {address} a changé : voici le numéro de sécurité de la nouvelle clé. Acceptez-la seulement si {address} affiche les mêmes chiffres, en personne ou lors d'un appel de confiance. Une clé inattendue peut signifier que quelqu'un tente de lire vos messages.",
  "Accept the new key": "Accepter la nouvelle clé",
  "The identity key of {address} changed. Nothing is sent to this conversation until you compare the new safety number with them and accept it.":
    "La clé d'identité de {address} a changé. Rien n'est envoyé dans cette conversation tant que vous n'avez pas comparé le nouveau numéro de sécurité avec cette personne et accepté la clé.",
  "Compare safety numbers with {address}": "Comparer les numéros de sécurité avec {address}",
  Members: "Membres",
  "Not sent: {error}": "Non envoyé : {error}",
  Retry: "Réessayer",
  "Sending…": "Envoi…",
  "{sender}, sending": "{sender}, envoi en cours",
  Message: "Message",
  Send: "Envoyer",
  "Name at least one member.": "Indiquez au moins un membre.",
  Name: "Nom",
  Cancel: "Annuler",
  Off: "Désactivés",
  "5 minutes": "5 minutes",
  "1 hour": "1 heure",
  "1 day": "1 jour",
  "1 week": "1 semaine",
  "4 weeks": "4 semaines",
  "{n} seconds": "{n} secondes",
  "Disappearing messages": "Messages éphémères",
  "{sender} set disappearing messages to {timer}": "{sender} a réglé les messages éphémères sur {timer}",
  "{sender} turned disappearing messages off": "{sender} a désactivé les messages éphémères",
  "This message was deleted": "Ce message a été supprimé",
  edited: "modifié",
  "Disappears at {time}": "Disparaît à {time}",
  "In reply to": "En réponse à",
  "A message not on this device (sent before it joined, or erased)":
    "Un message absent de cet appareil (envoyé avant son arrivée, ou effacé)",
  "A message from {sender} could not be read": "Un message de {sender} n'a pas pu être lu",
  "A message could not be read": "Un message n'a pas pu être lu",
  "Why: {reason}": "Pourquoi : {reason}",
  "{sender} is typing…": "{sender} écrit…",
  "Send read receipts": "Envoyer les confirmations de lecture",
  Reactions: "Réactions",
  "{emoji} {n}: {who}": "{emoji} {n} : {who}",
  "Read by {n} of {total}": "Lu par {n} sur {total}",
  "Delivered to {n} of {total}": "Remis à {n} sur {total}",
  Sent: "Envoyé",
  Reply: "Répondre",
  React: "Réagir",
  Edit: "Modifier",
  Delete: "Supprimer",
  "Delete this message for everyone?": "Supprimer ce message pour tout le monde ?",
  "Delete for everyone": "Supprimer pour tout le monde",
  "Choose a reaction": "Choisir une réaction",
  "React with {emoji}": "Réagir avec {emoji}",
  "Replying to {sender}: {text}": "Réponse à {sender} : {text}",
  "Editing your message": "Modification de votre message",
  Save: "Enregistrer",
  "Search messages": "Rechercher dans les messages",
  "{sender} labelled the conversation {label}": "{sender} a marqué la conversation {label}",
  "{sender} took the label off": "{sender} a retiré le marquage",
  "{sender} started a call": "{sender} a lancé un appel",
  "Call ended after {length}": "Appel terminé après {length}",
  "Missed call ({length})": "Appel manqué ({length})",
  Call: "Appeler",
  "Join the call": "Rejoindre l'appel",
  "In a call": "En appel",
  "Call going on": "Appel en cours",
  "This browser cannot encrypt calls end to end: use a recent Firefox, Safari or Chromium.":
    "Ce navigateur ne sait pas chiffrer les appels de bout en bout : utilisez un Firefox, Safari ou Chromium récent.",
  "Call in {title}": "Appel dans {title}",
  "Connecting…": "Connexion…",
  "Reconnecting…": "Reconnexion…",
  "Calling…": "Appel en cours…",
  "In call · {time}": "En appel · {time}",
  "In the call": "Dans l'appel",
  speaking: "parle",
  Mute: "Couper le micro",
  Unmute: "Rétablir le micro",
  "Turn camera on": "Activer la caméra",
  "Turn camera off": "Couper la caméra",
  "Could not turn the camera on: {error}": "Impossible d'activer la caméra : {error}",
  You: "Vous",
  Messages: "Messages",
  Speaker: "Haut-parleur",
  Microphone: "Micro",
  "Microphone {n}": "Micro {n}",
  "Speaker {n}": "Haut-parleur {n}",
  "Hang up": "Raccrocher",
  "Incoming call": "Appel entrant",
  "{sender} is calling in {title}": "{sender} vous appelle dans {title}",
  "{sender} is calling": "{sender} vous appelle",
  Accept: "Accepter",
  Decline: "Refuser",
  "Could not join the call: {error}": "Impossible de rejoindre l'appel : {error}",
  "You are no longer a member of this conversation: the call ended.":
    "Vous n'êtes plus membre de cette conversation : l'appel est terminé.",
  forwarded: "transféré",
  Forward: "Transférer",
  "Forward to": "Transférer vers",
  "Choose a conversation": "Choisir une conversation",
  "Send there": "Envoyer",
  "Sensitivity label": "Marquage de sensibilité",
  "No label": "Sans marquage",
  "Search results": "Résultats de la recherche",
  "No message matches.": "Aucun message ne correspond.",
  Create: "Créer",
  "Creating…": "Création…",
  Close: "Fermer",
  "Revoke device {id}? It will read nothing sent from now on.":
    "Révoquer l'appareil {id} ? Il ne lira plus rien de ce qui sera envoyé.",
  "Loading…": "Chargement…",
  "Your signed device list (version {version}) names the devices other people's apps add to your conversations.":
    "Votre liste d'appareils signée (version {version}) désigne les appareils que les applications des autres ajoutent à vos conversations.",
  "this device": "cet appareil",
  "not certified by you: never used": "non certifié par vous : jamais utilisé",
  "not on your device list": "absent de votre liste d'appareils",
  "Revoke device {id}": "Révoquer l'appareil {id}",
  Revoke: "Révoquer",
  "Revoking…": "Révocation…",
  "Link a device": "Lier un appareil",
  "Link a new device": "Lier un nouvel appareil",
  "On the new device, choose “Link to an existing account” and type:":
    "Sur le nouvel appareil, choisissez « Lier à un compte existant » et saisissez :",
  "QR code of the link code": "QR code du code de liaison",
  "Waiting for the new device…": "En attente du nouvel appareil…",
  "Preparing a link code…": "Préparation d'un code de liaison…",
  "Linked device {id}: added to {conversations} conversations, {messages} messages handed over.":
    "Appareil {id} lié : ajouté à {conversations} conversations, {messages} messages transmis.",
  "Not linked: {error}": "Non lié : {error}",
  "None: nothing was refused.": "Aucune : rien n'a été refusé.",
  "Safety number with {address}": "Numéro de sécurité avec {address}",
  "Compare it with theirs, in person or on a call you trust: it is the same on both sides.":
    "Comparez-le avec le sien, en personne ou lors d'un appel de confiance : il est identique des deux côtés.",
  "Safety number digits": "Chiffres du numéro de sécurité",
  "QR code of the safety number": "QR code du numéro de sécurité",
  Verified: "Vérifié",
  "Mark as verified": "Marquer comme vérifié",
  you: "vous",
  "Remove {user}": "Retirer {user}",
  Remove: "Retirer",
  "Remove {user}? They will read nothing sent from now on.":
    "Retirer {user} ? Il ne lira plus rien de ce qui sera envoyé.",
  "Add members": "Ajouter des membres",
  Add: "Ajouter",
  "Working…": "En cours…",
  "Attach file": "Joindre un fichier",
  "Cancel the link": "Annuler la liaison",
  "Earlier messages": "Messages précédents",
  "Uploading {name}": "Envoi de {name}",
  "Downloading {name}": "Téléchargement de {name}",
  "Download {name}": "Télécharger {name}",
  Download: "Télécharger",
  "Show image": "Afficher l'image",
  Read: "Lire",
  "Could not open the file: {error}": "Impossible d'ouvrir le fichier : {error}",
  "Files of this conversation can be viewed in the app only.":
    "Les fichiers de cette conversation ne peuvent être consultés que dans l'application.",
  "Files of this conversation cannot be opened.": "Les fichiers de cette conversation ne peuvent pas être ouverts.",
  "Drop files to send them": "Déposez des fichiers pour les envoyer",
};

const STORAGE_KEY = "missive-language";

function initial(): Language {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "en" || saved === "fr") return saved;
  return navigator.language.toLowerCase().startsWith("fr") ? "fr" : "en";
}

let current: Language = initial();
document.documentElement.lang = current;

export function language(): Language {
  return current;
}

/** Switches the language (remembered in this browser). The caller re-renders. */
export function setLanguage(next: Language) {
  current = next;
  localStorage.setItem(STORAGE_KEY, next);
  document.documentElement.lang = next;
}

/** `text` in the current language, with `{name}` replaced by `params.name`. */
export function t(text: string, params: Record<string, string | number> = {}): string {
  const found = current === "fr" ? (fr[text] ?? text) : text;
  return found.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}
