"""The simulator's cast: federal agencies and their purchasing units, suppliers, a catalogue of items.

Agency names are real bodies of Mexico's federal public administration; everything else is invented.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

# (name, acronym, ramo, sector, units): ``units`` is how many purchasing units (unidades compradoras)
# the agency gets: a central one plus delegations in the states for the big decentralised bodies.
AGENCIES: tuple[tuple[str, str, str, str, int], ...] = (
    ("Instituto Mexicano del Seguro Social", "IMSS", "050", "salud", 40),
    ("Instituto de Seguridad y Servicios Sociales de los Trabajadores del Estado", "ISSSTE", "051", "salud", 30),
    ("Comisión Federal de Electricidad", "CFE", "053", "energia", 30),
    ("Petróleos Mexicanos", "PEMEX", "052", "energia", 20),
    ("Secretaría de la Defensa Nacional", "SEDENA", "007", "seguridad", 14),
    ("Secretaría de Marina", "SEMAR", "013", "seguridad", 10),
    ("Secretaría de Salud", "SSA", "012", "salud", 12),
    ("Secretaría de Educación Pública", "SEP", "011", "educacion", 12),
    ("Secretaría de Infraestructura, Comunicaciones y Transportes", "SICT", "009", "infraestructura", 32),
    ("Comisión Nacional del Agua", "CONAGUA", "016", "infraestructura", 14),
    ("Secretaría de Hacienda y Crédito Público", "SHCP", "006", "hacienda", 4),
    ("Servicio de Administración Tributaria", "SAT", "006", "hacienda", 8),
    ("Secretaría de la Función Pública", "SFP", "027", "general", 2),
    ("Secretaría de Gobernación", "SEGOB", "004", "general", 4),
    ("Secretaría de Relaciones Exteriores", "SRE", "005", "general", 3),
    ("Secretaría de Economía", "SE", "010", "general", 3),
    ("Secretaría de Agricultura y Desarrollo Rural", "SADER", "008", "agro", 6),
    ("Secretaría de Medio Ambiente y Recursos Naturales", "SEMARNAT", "016", "general", 4),
    ("Secretaría de Energía", "SENER", "018", "energia", 2),
    ("Secretaría de Bienestar", "BIENESTAR", "020", "general", 6),
    ("Secretaría de Turismo", "SECTUR", "021", "general", 2),
    ("Secretaría del Trabajo y Previsión Social", "STPS", "014", "general", 2),
    ("Secretaría de Desarrollo Agrario, Territorial y Urbano", "SEDATU", "015", "infraestructura", 3),
    ("Secretaría de Cultura", "CULTURA", "048", "cultura", 3),
    ("Secretaría de Seguridad y Protección Ciudadana", "SSPC", "036", "seguridad", 4),
    ("Guardia Nacional", "GN", "036", "seguridad", 8),
    ("Instituto Nacional de Antropología e Historia", "INAH", "048", "cultura", 6),
    ("Instituto Nacional de Bellas Artes y Literatura", "INBAL", "048", "cultura", 3),
    ("Instituto Politécnico Nacional", "IPN", "011", "educacion", 6),
    ("Consejo Nacional de Humanidades, Ciencias y Tecnologías", "CONAHCYT", "038", "educacion", 2),
    ("Comisión Nacional de Libros de Texto Gratuitos", "CONALITEG", "011", "educacion", 2),
    ("Instituto Nacional de Cancerología", "INCAN", "012", "salud", 1),
    ("Instituto Nacional de Cardiología Ignacio Chávez", "INCICH", "012", "salud", 1),
    ("Instituto Nacional de Pediatría", "INP", "012", "salud", 1),
    ("Instituto Nacional de Perinatología Isidro Espinosa de los Reyes", "INPER", "012", "salud", 1),
    ("Instituto Nacional de Enfermedades Respiratorias Ismael Cosío Villegas", "INER", "012", "salud", 1),
    ("Instituto Nacional de Ciencias Médicas y Nutrición Salvador Zubirán", "INCMNSZ", "012", "salud", 1),
    ("Instituto Nacional de Neurología y Neurocirugía Manuel Velasco Suárez", "INNN", "012", "salud", 1),
    ("Instituto Nacional de Rehabilitación Luis Guillermo Ibarra Ibarra", "INR", "012", "salud", 1),
    ("Hospital General de México Dr. Eduardo Liceaga", "HGM", "012", "salud", 1),
    ("Hospital Infantil de México Federico Gómez", "HIMFG", "012", "salud", 1),
    ("Hospital Juárez de México", "HJM", "012", "salud", 1),
    ("Hospital Regional de Alta Especialidad de Oaxaca", "HRAEO", "012", "salud", 1),
    ("Hospital Regional de Alta Especialidad del Bajío", "HRAEB", "012", "salud", 1),
    ("Servicios de Salud del IMSS para el Bienestar", "IMSS-BIENESTAR", "012", "salud", 16),
    ("Laboratorios de Biológicos y Reactivos de México", "BIRMEX", "012", "salud", 2),
    ("Sistema Nacional para el Desarrollo Integral de la Familia", "DIF", "012", "general", 2),
    ("Comisión Federal para la Protección contra Riesgos Sanitarios", "COFEPRIS", "012", "salud", 1),
    ("Centro Nacional de Control de Energía", "CENACE", "018", "energia", 3),
    ("Comisión Nacional de Seguridad Nuclear y Salvaguardias", "CNSNS", "018", "energia", 1),
    ("Instituto Nacional de Electricidad y Energías Limpias", "INEEL", "018", "energia", 1),
    ("Instituto Mexicano del Petróleo", "IMP", "018", "energia", 2),
    ("Aeropuertos y Servicios Auxiliares", "ASA", "009", "infraestructura", 4),
    ("Caminos y Puentes Federales de Ingresos y Servicios Conexos", "CAPUFE", "009", "infraestructura", 5),
    ("Servicios a la Navegación en el Espacio Aéreo Mexicano", "SENEAM", "009", "infraestructura", 2),
    ("Telecomunicaciones de México", "TELECOMM", "009", "general", 2),
    ("Servicio Postal Mexicano", "CORREOS", "009", "general", 3),
    ("Fondo Nacional de Fomento al Turismo", "FONATUR", "021", "infraestructura", 2),
    ("Tren Maya S.A. de C.V.", "TRENMAYA", "007", "infraestructura", 2),
    ("Instituto Mexicano del Transporte", "IMT", "009", "infraestructura", 1),
    ("Instituto Mexicano de Tecnología del Agua", "IMTA", "016", "infraestructura", 1),
    ("Comisión Nacional Forestal", "CONAFOR", "016", "agro", 4),
    ("Comisión Nacional de Áreas Naturales Protegidas", "CONANP", "016", "agro", 4),
    ("Procuraduría Federal de Protección al Ambiente", "PROFEPA", "016", "general", 3),
    ("Procuraduría Federal del Consumidor", "PROFECO", "010", "general", 3),
    ("Instituto Mexicano de la Propiedad Industrial", "IMPI", "010", "general", 1),
    ("Servicio Geológico Mexicano", "SGM", "010", "general", 2),
    ("Servicio Nacional de Sanidad, Inocuidad y Calidad Agroalimentaria", "SENASICA", "008", "agro", 6),
    ("Seguridad Alimentaria Mexicana", "SEGALMEX", "008", "agro", 4),
    ("Liconsa S.A. de C.V.", "LICONSA", "008", "agro", 6),
    ("Alimentación para el Bienestar", "ALIMENTACION", "008", "agro", 6),
    ("Instituto Nacional de Investigaciones Forestales, Agrícolas y Pecuarias", "INIFAP", "008", "agro", 3),
    ("Colegio de Postgraduados", "COLPOS", "008", "educacion", 2),
    ("Universidad Autónoma Chapingo", "UACH", "008", "educacion", 1),
    ("Tecnológico Nacional de México", "TECNM", "011", "educacion", 8),
    ("Colegio Nacional de Educación Profesional Técnica", "CONALEP", "011", "educacion", 3),
    ("Universidad Pedagógica Nacional", "UPN", "011", "educacion", 1),
    ("Comisión Nacional de Cultura Física y Deporte", "CONADE", "011", "general", 1),
    ("Instituto Nacional de Migración", "INM", "004", "seguridad", 6),
    ("Centro Nacional de Inteligencia", "CNI", "004", "seguridad", 1),
    ("Archivo General de la Nación", "AGN", "004", "cultura", 1),
    ("Talleres Gráficos de México", "TGM", "004", "general", 1),
    ("Prevención y Readaptación Social", "OADPRS", "036", "seguridad", 4),
    ("Banco Nacional de Obras y Servicios Públicos", "BANOBRAS", "006", "hacienda", 2),
    ("Nacional Financiera", "NAFIN", "006", "hacienda", 1),
    ("Banco del Bienestar", "BANBIENESTAR", "006", "hacienda", 3),
    ("Lotería Nacional", "LOTENAL", "006", "hacienda", 1),
    ("Casa de Moneda de México", "CMM", "006", "hacienda", 1),
    ("Comisión Nacional Bancaria y de Valores", "CNBV", "006", "hacienda", 1),
    ("Instituto de Administración y Avalúos de Bienes Nacionales", "INDAABIN", "006", "general", 1),
    ("Instituto para Devolver al Pueblo lo Robado", "INDEP", "006", "general", 1),
    ("Agencia Nacional de Aduanas de México", "ANAM", "006", "hacienda", 6),
    ("Instituto Nacional de los Pueblos Indígenas", "INPI", "047", "general", 4),
    ("Instituto Nacional de las Mujeres", "INMUJERES", "047", "general", 1),
    ("Instituto del Fondo Nacional de la Vivienda para los Trabajadores", "INFONAVIT", "014", "general", 4),
    ("Comisión Nacional de Vivienda", "CONAVI", "015", "infraestructura", 1),
    ("Registro Agrario Nacional", "RAN", "015", "general", 3),
)

STATES: tuple[tuple[str, str, str], ...] = (  # (name, capital city, first two digits of postal codes)
    ("Aguascalientes", "Aguascalientes", "20"), ("Baja California", "Mexicali", "21"),
    ("Baja California Sur", "La Paz", "23"), ("Campeche", "San Francisco de Campeche", "24"),
    ("Coahuila de Zaragoza", "Saltillo", "25"), ("Colima", "Colima", "28"), ("Chiapas", "Tuxtla Gutiérrez", "29"),
    ("Chihuahua", "Chihuahua", "31"), ("Ciudad de México", "Cuauhtémoc", "06"), ("Durango", "Durango", "34"),
    ("Guanajuato", "León", "37"), ("Guerrero", "Chilpancingo de los Bravo", "39"), ("Hidalgo", "Pachuca de Soto", "42"),
    ("Jalisco", "Guadalajara", "44"), ("México", "Toluca", "50"), ("Michoacán de Ocampo", "Morelia", "58"),
    ("Morelos", "Cuernavaca", "62"), ("Nayarit", "Tepic", "63"), ("Nuevo León", "Monterrey", "64"),
    ("Oaxaca", "Oaxaca de Juárez", "68"), ("Puebla", "Puebla", "72"), ("Querétaro", "Santiago de Querétaro", "76"),
    ("Quintana Roo", "Chetumal", "77"), ("San Luis Potosí", "San Luis Potosí", "78"), ("Sinaloa", "Culiacán", "80"),
    ("Sonora", "Hermosillo", "83"), ("Tabasco", "Villahermosa", "86"), ("Tamaulipas", "Ciudad Victoria", "87"),
    ("Tlaxcala", "Tlaxcala", "90"), ("Veracruz de Ignacio de la Llave", "Xalapa", "91"),
    ("Yucatán", "Mérida", "97"), ("Zacatecas", "Zacatecas", "98"),
)

CENTRAL_UNITS: tuple[str, ...] = (
    "Dirección General de Recursos Materiales y Servicios Generales",
    "Dirección de Adquisiciones",
    "Coordinación de Adquisición de Bienes y Contratación de Servicios",
    "Dirección de Administración y Finanzas",
    "Subdirección de Recursos Materiales",
    "Unidad de Administración y Finanzas",
)
DELEGATION_UNITS: tuple[str, ...] = (
    "Oficina de Representación en {state}",
    "Delegación Estatal en {state}",
    "Coordinación Regional {state}",
    "Unidad Administrativa en {state}",
)

STREETS: tuple[str, ...] = (
    "Av. Insurgentes Sur", "Paseo de la Reforma", "Av. Constituyentes", "Calle Hidalgo", "Av. Juárez",
    "Calle Morelos", "Blvd. Adolfo López Mateos", "Av. Universidad", "Calzada de Tlalpan", "Av. Revolución",
    "Calle 5 de Mayo", "Av. Vallarta", "Blvd. Díaz Ordaz", "Av. Benito Juárez", "Calle Allende",
)
COLONIAS: tuple[str, ...] = (
    "Centro", "Del Valle", "Industrial", "Roma Norte", "Las Américas", "Jardines del Bosque", "San Rafael",
    "Lomas de Chapultepec", "Obrera", "Moderna", "La Paz", "Santa Fe", "El Mirador", "Reforma",
)

FIRST_NAMES: tuple[str, ...] = (
    "José", "María", "Juan", "Guadalupe", "Francisco", "Ana", "Luis", "Carmen", "Jorge", "Laura", "Miguel",
    "Patricia", "Alejandro", "Verónica", "Ricardo", "Gabriela", "Fernando", "Adriana", "Roberto", "Claudia",
    "Héctor", "Leticia", "Sergio", "Rocío", "Arturo", "Mónica", "Ángel", "Sofía", "Raúl", "Martha",
)
SURNAMES: tuple[str, ...] = (
    "Hernández", "García", "Martínez", "López", "González", "Pérez", "Rodríguez", "Sánchez", "Ramírez",
    "Cruz", "Flores", "Gómez", "Morales", "Vázquez", "Reyes", "Jiménez", "Torres", "Díaz", "Gutiérrez",
    "Ruiz", "Mendoza", "Aguilar", "Ortiz", "Moreno", "Castillo", "Romero", "Álvarez", "Méndez", "Chávez",
    "Rivera", "Juárez", "Ramos", "Domínguez", "Herrera", "Medina", "Castro", "Vargas", "Guzmán", "Velázquez",
)

COMPANY_PREFIXES: dict[str, tuple[str, ...]] = {
    "salud": ("Distribuidora de Medicamentos", "Laboratorios", "Suministros Médicos", "Farmacéutica",
              "Equipos Médicos", "Comercializadora Hospitalaria", "Biomédica"),
    "energia": ("Ingeniería Eléctrica", "Servicios Petroleros", "Energía y Control", "Transformadores",
                "Suministros Industriales", "Tubería y Válvulas"),
    "seguridad": ("Blindajes", "Equipamiento Táctico", "Uniformes y Equipos", "Seguridad Privada",
                  "Tecnología en Seguridad"),
    "educacion": ("Editorial", "Mobiliario Escolar", "Material Didáctico", "Soluciones Educativas"),
    "infraestructura": ("Constructora", "Pavimentos", "Edificaciones", "Ingeniería Civil", "Obras y Proyectos",
                        "Maquinaria y Construcción"),
    "agro": ("Agroinsumos", "Granos y Semillas", "Fertilizantes", "Lácteos", "Veterinaria"),
    "cultura": ("Restauración y Conservación", "Museografía", "Producciones", "Ediciones"),
    "hacienda": ("Sistemas Financieros", "Consultoría Fiscal", "Impresos de Seguridad"),
    "general": ("Comercializadora", "Servicios Integrales", "Grupo", "Distribuidora", "Papelería",
                "Limpieza Profesional", "Tecnologías de la Información", "Consultores", "Transportes",
                "Combustibles", "Mantenimiento Industrial", "Soluciones Empresariales"),
}
COMPANY_CORES: tuple[str, ...] = (
    "del Bajío", "Azteca", "Anáhuac", "del Pacífico", "del Norte", "del Sureste", "Integra", "Nova", "Alfa",
    "Omega", "Maya", "Tolteca", "Olmeca", "del Golfo", "Metropolitana", "Occidente", "Centauro", "Quetzal",
    "Sierra Madre", "Cumbres", "Tenochtitlan", "Aztlán", "Jaguar", "Halcón", "Pirámide", "Horizonte",
    "Vanguardia", "Continental", "Universal", "Mexicana", "Peninsular", "Huasteca", "Sonorense", "Tapatía",
)
LEGAL_FORMS: tuple[str, ...] = (
    "S.A. de C.V.", "S.A. de C.V.", "S.A. de C.V.", "S. de R.L. de C.V.", "S.A.P.I. de C.V.", "S.C.",
)

# (CUCoP code, description, UNSPSC code, unit code (UN/CEFACT), unit name, category, sector, price median)
CATALOGUE: tuple[tuple[str, str, str, str, str, str, str, float], ...] = (
    ("21100001", "Papel bond tamaño carta", "14111507", "XBX", "Caja", "goods", "general", 850.0),
    ("21100045", "Tóner para impresora láser", "44103103", "H87", "Pieza", "goods", "general", 2300.0),
    ("21400012", "Computadora de escritorio", "43211507", "H87", "Pieza", "goods", "general", 18500.0),
    ("21400087", "Licencia de software de ofimática", "43232100", "E48", "Servicio", "goods", "general", 4200.0),
    ("21600003", "Material de limpieza (detergente, cloro, jabón)", "47131800", "XBX", "Caja", "goods",
     "general", 640.0),
    ("26100002", "Gasolina magna", "15101506", "LTR", "Litro", "goods", "general", 23.5),
    ("26100004", "Diésel", "15101505", "LTR", "Litro", "goods", "general", 25.0),
    ("29600011", "Refacciones para vehículos", "25170000", "H87", "Pieza", "goods", "general", 3500.0),
    ("31800001", "Servicio postal y mensajería", "78102200", "E48", "Servicio", "services", "general", 25000.0),
    ("33800001", "Servicio de vigilancia", "92121500", "MON", "Mes", "services", "general", 180000.0),
    ("35800001", "Servicio de limpieza integral", "76111500", "MON", "Mes", "services", "general", 150000.0),
    ("35500001", "Mantenimiento preventivo y correctivo de vehículos", "78181500", "E48", "Servicio",
     "services", "general", 45000.0),
    ("35100003", "Mantenimiento de inmuebles", "72101500", "E48", "Servicio", "services", "general", 250000.0),
    ("31700002", "Servicio de internet y enlaces dedicados", "81112100", "MON", "Mes", "services", "general",
     95000.0),
    ("33300005", "Servicio de desarrollo de sistemas informáticos", "81111500", "E48", "Servicio", "services",
     "general", 900000.0),
    ("33900001", "Servicios integrales de organización de eventos", "80141900", "E48", "Servicio", "services",
     "general", 120000.0),
    ("32500001", "Arrendamiento de vehículos terrestres", "78111800", "MON", "Mes", "services", "general",
     210000.0),
    ("34500001", "Seguro de bienes patrimoniales", "84131500", "E48", "Servicio", "services", "general",
     1500000.0),
    ("22100004", "Productos alimenticios para personal", "50190000", "XBX", "Caja", "goods", "general", 1200.0),
    ("25300012", "Paracetamol 500 mg tabletas", "51142106", "XBX", "Caja", "goods", "salud", 35.0),
    ("25300101", "Insulina glargina solución inyectable", "51183603", "H87", "Pieza", "goods", "salud", 420.0),
    ("25300220", "Metformina 850 mg tabletas", "51182002", "XBX", "Caja", "goods", "salud", 28.0),
    ("25400015", "Jeringa desechable de 5 ml", "42142609", "XBX", "Caja", "goods", "salud", 160.0),
    ("25400033", "Guantes de látex para exploración", "42132203", "XBX", "Caja", "goods", "salud", 190.0),
    ("25400078", "Material de curación (gasas, vendas)", "42311500", "XBX", "Caja", "goods", "salud", 310.0),
    ("25500004", "Reactivos de laboratorio clínico", "41116100", "H87", "Pieza", "goods", "salud", 5200.0),
    ("53100006", "Monitor de signos vitales", "42181700", "H87", "Pieza", "goods", "salud", 145000.0),
    ("53200010", "Ultrasonido diagnóstico", "42201800", "H87", "Pieza", "goods", "salud", 1850000.0),
    ("33900120", "Servicio integral de hemodiálisis", "85121800", "E48", "Servicio", "services", "salud",
     850000.0),
    ("35400002", "Mantenimiento de equipo médico", "81141500", "E48", "Servicio", "services", "salud", 95000.0),
    ("24600008", "Transformador de distribución", "39121000", "H87", "Pieza", "goods", "energia", 98000.0),
    ("24600015", "Cable de aluminio para líneas aéreas", "26121600", "MTR", "Metro", "goods", "energia", 85.0),
    ("24700011", "Tubería de acero al carbono", "40142000", "MTR", "Metro", "goods", "energia", 1450.0),
    ("56700003", "Válvula de compuerta industrial", "40141600", "H87", "Pieza", "goods", "energia", 36000.0),
    ("35700004", "Mantenimiento a subestaciones eléctricas", "72151500", "E48", "Servicio", "services",
     "energia", 1200000.0),
    ("27100002", "Vestuario y uniformes", "53101500", "H87", "Pieza", "goods", "seguridad", 780.0),
    ("28300001", "Chalecos balísticos", "46181500", "H87", "Pieza", "goods", "seguridad", 14500.0),
    ("28200004", "Equipo de radiocomunicación", "43222600", "H87", "Pieza", "goods", "seguridad", 22000.0),
    ("21700002", "Material didáctico", "60100000", "XBX", "Caja", "goods", "educacion", 950.0),
    ("51100004", "Mobiliario escolar (pupitres)", "56121500", "H87", "Pieza", "goods", "educacion", 1850.0),
    ("33600004", "Impresión de libros de texto", "82121500", "H87", "Pieza", "services", "educacion", 38.0),
    ("62200001", "Construcción de edificios no habitacionales", "72121400", "E48", "Servicio", "works",
     "infraestructura", 12000000.0),
    ("62400003", "Construcción de obras de agua potable y drenaje", "72141100", "E48", "Servicio", "works",
     "infraestructura", 8500000.0),
    ("62500002", "Conservación de carreteras federales", "72141000", "E48", "Servicio", "works",
     "infraestructura", 15000000.0),
    ("62900001", "Supervisión de obra pública", "81101500", "E48", "Servicio", "services", "infraestructura",
     1800000.0),
    ("62300005", "Rehabilitación de puentes", "72141003", "E48", "Servicio", "works", "infraestructura",
     6500000.0),
    ("22300001", "Leche en polvo", "50131700", "KGM", "Kilogramo", "goods", "agro", 95.0),
    ("23100004", "Semilla de maíz mejorada", "10151500", "KGM", "Kilogramo", "goods", "agro", 110.0),
    ("24800005", "Fertilizante nitrogenado", "10171500", "KGM", "Kilogramo", "goods", "agro", 14.0),
    ("25900007", "Vacunas de uso veterinario", "42121600", "XBX", "Caja", "goods", "agro", 2400.0),
    ("35900003", "Restauración de monumentos históricos", "72121000", "E48", "Servicio", "works", "cultura",
     3200000.0),
    ("33100011", "Servicios de museografía", "82141500", "E48", "Servicio", "services", "cultura", 450000.0),
    ("33400002", "Servicios de consultoría fiscal", "84111600", "E48", "Servicio", "services", "hacienda",
     650000.0),
    ("21500006", "Formas valoradas impresas", "14111800", "H87", "Pieza", "goods", "hacienda", 12.0),
)

PARTIDAS: dict[str, str] = {  # first three digits of a CUCoP code: spending concept (Clasificador por Objeto)
    "211": "Materiales, útiles y equipos menores de oficina", "214": "Materiales y útiles de tecnologías de la "
    "información", "216": "Material de limpieza", "217": "Materiales y útiles de enseñanza", "215": "Material "
    "impreso", "221": "Productos alimenticios para personas", "223": "Utensilios para el servicio de alimentación",
    "231": "Productos alimenticios, agropecuarios y forestales", "246": "Material eléctrico y electrónico",
    "247": "Artículos metálicos para la construcción", "248": "Materiales complementarios", "253": "Medicinas "
    "y productos farmacéuticos", "254": "Materiales, accesorios y suministros médicos", "255": "Materiales, "
    "accesorios y suministros de laboratorio", "259": "Otros productos químicos", "261": "Combustibles, "
    "lubricantes y aditivos", "271": "Vestuario y uniformes", "282": "Materiales de seguridad pública", "283":
    "Prendas de protección para seguridad pública", "296": "Refacciones y accesorios menores de equipo de "
    "transporte", "311": "Servicio de energía eléctrica", "317": "Servicios de acceso de internet", "318":
    "Servicios postales y telegráficos", "325": "Arrendamiento de equipo de transporte", "331": "Servicios "
    "legales, de contabilidad y auditoría", "333": "Servicios de consultoría administrativa e informática",
    "334": "Servicios de capacitación", "336": "Servicios de apoyo administrativo e impresión", "338":
    "Servicios de vigilancia", "339": "Servicios profesionales, científicos y técnicos integrales", "345":
    "Seguro de bienes patrimoniales", "351": "Conservación y mantenimiento menor de inmuebles", "354":
    "Instalación, reparación y mantenimiento de equipo médico", "355": "Reparación y mantenimiento de equipo "
    "de transporte", "357": "Instalación, reparación y mantenimiento de maquinaria", "358": "Servicios de "
    "limpieza y manejo de desechos", "359": "Servicios de jardinería y fumigación", "511": "Muebles de oficina "
    "y estantería", "531": "Equipo médico y de laboratorio", "532": "Instrumental médico y de laboratorio",
    "567": "Herramientas y máquinas-herramienta", "622": "Edificación no habitacional", "623": "Construcción de "
    "obras para el abastecimiento de agua", "624": "División de terrenos y construcción de obras de "
    "urbanización", "625": "Construcción de vías de comunicación", "629": "Trabajos de acabados en edificaciones",
}


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    rfc: str
    legal: str
    address: tuple[str, str, str, str]  # street, locality, region, postal code
    contact: tuple[str, str, str]  # name, email, telephone
    sector: str
    unit_key: str = ""  # a purchasing unit's CompraNet key

    def ref(self) -> Json:
        return {"id": self.id, "name": self.name}

    def party(self, roles: list[str]) -> Json:
        street, locality, region, postal = self.address
        party: Json = {
            "id": self.id, "name": self.name, "roles": roles,
            "identifier": {"scheme": "MX-RFC", "id": self.rfc, "legalName": self.legal},
            "address": {"streetAddress": street, "locality": locality, "region": region,
                        "postalCode": postal, "countryName": "México"},
            "contactPoint": {"name": self.contact[0], "email": self.contact[1], "telephone": self.contact[2]},
        }
        if self.unit_key:
            party["additionalIdentifiers"] = [{"scheme": "MX-CUC", "id": self.unit_key, "legalName": self.legal}]
        return party


@dataclass(frozen=True)
class Universe:
    agencies: list[Org]
    units: list[tuple[int, Org]]  # (agency index, purchasing unit)
    suppliers: dict[str, list[Org]]  # by sector, most active first
    catalogue: dict[str, list[int]]  # catalogue indexes by sector


_ACCENTS = str.maketrans("áéíóúüñÁÉÍÓÚÜÑ", "aeiouunAEIOUUN")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def _ascii(text: str) -> str:
    return _NOT_ALNUM.sub("", text.translate(_ACCENTS).lower())


def _rfc(rng: random.Random, letters: str, taken: set[str]) -> str:
    alnum = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    while True:
        date = f"{rng.randint(60, 99) if rng.random() < 0.5 else rng.randint(0, 22):02d}"
        rfc = f"{letters}{date}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}" + "".join(
            rng.choice(alnum) for _ in range(2)) + rng.choice("0123456789A")
        if rfc not in taken:
            taken.add(rfc)
            return rfc


def _address(rng: random.Random, state: tuple[str, str, str]) -> tuple[str, str, str, str]:
    street = f"{rng.choice(STREETS)} {rng.randint(1, 3000)}, Col. {rng.choice(COLONIAS)}"
    return street, state[1], state[0], f"{state[2]}{rng.randint(0, 999):03d}"


def _person(rng: random.Random) -> tuple[str, str]:
    first, last, last2 = rng.choice(FIRST_NAMES), rng.choice(SURNAMES), rng.choice(SURNAMES)
    return f"{first} {last} {last2}", f"{_ascii(first)}.{_ascii(last)}"


def build_universe(rng: random.Random, suppliers: int = 6000) -> Universe:
    """The agencies, their purchasing units and the suppliers, drawn from ``rng``."""
    taken: set[str] = set()
    agencies: list[Org] = []
    units: list[tuple[int, Org]] = []
    cdmx = STATES[8]
    for a, (name, acronym, ramo, sector, n_units) in enumerate(AGENCIES):
        rfc = _rfc(rng, (_ascii(acronym).upper() + "XXX")[:3], taken)
        person, mail = _person(rng)
        domain = f"{_ascii(acronym)}.gob.mx"
        contact = (person, f"{mail}@{domain}", f"55 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}")
        agency = Org(f"MX-RFC-{rfc}", name, rfc, name, _address(rng, cdmx), contact, sector)
        agencies.append(agency)
        states = rng.sample(STATES, k=min(n_units - 1, len(STATES)))
        for u in range(n_units):
            key = f"{ramo}{acronym[0]}{rng.randint(0, 999):03d}{u + 1:02d}"
            state = cdmx if u == 0 else states[(u - 1) % len(states)]
            title = (rng.choice(CENTRAL_UNITS) if u == 0 else rng.choice(DELEGATION_UNITS)).format(
                state=state[0])
            person, mail = _person(rng)
            phone = f"{rng.randint(200, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
            unit = Org(f"{agency.id}-{key}", f"{acronym}-{title} #{key}", rfc, name, _address(rng, state),
                        (person, f"{mail}@{domain}", f"{phone} ext. {rng.randint(1000, 99999)}"), sector, key)
            units.append((a, unit))
    by_sector: dict[str, list[Org]] = {s: [] for s in COMPANY_PREFIXES}
    sectors = list(COMPANY_PREFIXES)
    for i in range(suppliers):
        sector = sectors[(i // 3) % len(sectors)] if i % 3 else "general"
        state = rng.choice(STATES)
        if rng.random() < 0.2:  # a natural person: RFC of 4 letters
            first, last, last2 = rng.choice(FIRST_NAMES), rng.choice(SURNAMES), rng.choice(SURNAMES)
            name = f"{first} {last} {last2}".upper()
            letters = (_ascii(last)[:2] + _ascii(last2)[0] + _ascii(first)[0]).upper()
            mail = f"{_ascii(first)}{_ascii(last)}{rng.randint(1, 99)}@gmail.com"
        else:
            core = rng.choice(COMPANY_CORES)
            base = f"{rng.choice(COMPANY_PREFIXES[sector])} {core}"
            name = f"{base}, {rng.choice(LEGAL_FORMS)}".upper()
            words = [w for w in base.split() if w[0].isupper()] + ["X", "X"]
            letters = "".join(_ascii(w)[0] for w in words[:3]).upper()
            mail = f"ventas@{_ascii(base)[:20]}.com.mx"
        rfc = _rfc(rng, letters, taken)
        phone = f"{rng.randint(200, 999)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
        by_sector[sector].append(Org(f"MX-RFC-{rfc}", name, rfc, name, _address(rng, state),
                                      (_person(rng)[0], mail, phone), sector))
    catalogue: dict[str, list[int]] = {s: [] for s in COMPANY_PREFIXES}
    for c, entry in enumerate(CATALOGUE):
        catalogue[entry[6]].append(c)
    return Universe(agencies, units, by_sector, catalogue)
